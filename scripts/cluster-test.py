#!/usr/bin/env python3
"""Cluster test (issue 17): three nara nodes behind HAProxy, on a PostgreSQL
primary with a synchronous standby kept by Patroni (etcd as its store), all on
loopback. Under write load through HAProxy it kills -9 one nara node, then the
PostgreSQL primary (its Patroni and its postmaster: the machine's death), and
restores both. Beside the writes, agency systems exchange through the
gateway (`nara exchange call`: signed, X-Road-Id, the message log and its
ledger entry committed before the answer). Then it counts:

  - every acknowledged write present exactly once (clients retry what was not
    acknowledged with the same natural key, never what was: a retry that finds
    the write committed gets 409, and counts as acknowledged);
  - every answered exchange in the message log exactly once and in the ledger
    (a retry keeps its X-Road-Id: one whose first attempt committed is refused
    as a duplicate, `Client.DuplicateMessageId`; such ids are counted apart and
    must be in the log once too, unless their first attempt was still in
    flight and failed, which is counted as well);
  - every acknowledged write has its ledger entry, and the log is consistent
    with every checkpoint published before, through and after the failover;
  - the API session (a token issued before) still valid on every node;
  - the seconds without a successful write, and the failed requests with the
    errors they got.

    scripts/cluster-test.py --nara target/debug/nara [--failovers 1] [--json FILE]

Needs Debian's patroni, etcd-server and haproxy (`.ci/run` installs them) and
PostgreSQL's binaries under /usr/lib/postgresql/*/bin. Only 127.0.0.1 is used.
"""
import argparse, glob, json, os, pwd, random, shutil, signal, socket, subprocess, sys, tempfile, threading, time
import urllib.error, urllib.request

import ledger_tiles

TOKEN = ""
PG_PASSWORD = "cluster-test-superuser"


TAKEN = set()


def free_port():
    """A free loopback port, never one handed out before in this run (the
    kernel may offer a port again once its socket is closed)."""
    while True:
        s = socket.socket(); s.bind(("127.0.0.1", 0)); port = s.getsockname()[1]; s.close()
        if port not in TAKEN:
            TAKEN.add(port)
            return port


def request(url, method="GET", body=None, timeout=5, token=None):
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url, data=data, method=method)
    req.add_header("authorization", f"Bearer {token or TOKEN}")
    if data is not None:
        req.add_header("content-type", "application/json")
    with urllib.request.urlopen(req, timeout=timeout) as r:
        return r.status, r.read()


def get_status(url, timeout=1):
    try:
        with urllib.request.urlopen(url, timeout=timeout) as r:
            return r.status
    except urllib.error.HTTPError as e:
        return e.code
    except Exception:
        return None


def wait_for(what, check, seconds=90):
    deadline = time.time() + seconds
    while time.time() < deadline:
        if check():
            return
        time.sleep(0.2)
    raise SystemExit(f"cluster test: timed out waiting for {what}")


class Cluster:
    def __init__(self, work, owner):
        self.work, self.owner = work, owner
        self.bindir = sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=lambda p: [int(x) for x in p.split("/")[-2].split(".")])[-1]
        self.etcd_port, self.etcd_peer = free_port(), free_port()
        self.pg = [{"name": f"pg{i + 1}", "port": free_port(), "rest": free_port(), "proc": None} for i in range(2)]
        self.haproxy_pg, self.haproxy_http, self.haproxy_stats = free_port(), free_port(), free_port()
        self.procs = []

    def spawn(self, argv, log, as_owner=False):
        if as_owner and os.getuid() == 0:
            argv = ["runuser", "-u", self.owner, "--"] + argv
        p = subprocess.Popen(argv, stdout=open(log, "a"), stderr=subprocess.STDOUT, start_new_session=True)
        self.procs.append(p)
        return p

    def start_etcd(self):
        d = os.path.join(self.work, "etcd")
        self.spawn(["etcd", "--name", "e1", "--data-dir", d,
                    "--listen-client-urls", f"http://127.0.0.1:{self.etcd_port}",
                    "--advertise-client-urls", f"http://127.0.0.1:{self.etcd_port}",
                    "--listen-peer-urls", f"http://127.0.0.1:{self.etcd_peer}",
                    "--initial-advertise-peer-urls", f"http://127.0.0.1:{self.etcd_peer}",
                    "--initial-cluster", f"e1=http://127.0.0.1:{self.etcd_peer}"], os.path.join(self.work, "etcd.log"))
        wait_for("etcd", lambda: get_status(f"http://127.0.0.1:{self.etcd_port}/health") == 200)

    def patroni_config(self, node):
        # JSON is YAML: Patroni reads it as it is.
        return {
            "scope": "nara", "name": node["name"],
            "log": {"level": "WARNING"},
            "restapi": {"listen": f"127.0.0.1:{node['rest']}", "connect_address": f"127.0.0.1:{node['rest']}"},
            "etcd3": {"hosts": [f"127.0.0.1:{self.etcd_port}"]},
            "bootstrap": {
                "dcs": {
                    # The leader key lives 10 s: a dead primary is replaced
                    # about that long after it stops renewing it.
                    "ttl": 10, "loop_wait": 1, "retry_timeout": 3,
                    "maximum_lag_on_failover": 0,
                    # A commit waits for the standby: an acknowledged write
                    # survives the primary's death.
                    "synchronous_mode": True,
                    "postgresql": {"use_pg_rewind": True, "parameters": {
                        "max_connections": 200, "wal_log_hints": "on", "max_wal_senders": 10,
                        "max_replication_slots": 10, "wal_keep_size": "256MB"}},
                },
                "initdb": [{"encoding": "UTF8"}, {"locale": "C.UTF-8"}, "data-checksums"],
                "pg_hba": ["local all all trust", "host replication replicator 127.0.0.1/32 md5",
                           "host all all 127.0.0.1/32 md5"],
            },
            "postgresql": {
                "listen": f"127.0.0.1:{node['port']}", "connect_address": f"127.0.0.1:{node['port']}",
                "data_dir": os.path.join(self.work, node["name"]), "bin_dir": self.bindir,
                "pgpass": os.path.join(self.work, f"{node['name']}.pgpass"),
                "authentication": {
                    "superuser": {"username": "postgres", "password": PG_PASSWORD},
                    "replication": {"username": "replicator", "password": "cluster-test-replication"},
                },
                "parameters": {"unix_socket_directories": self.work},
            },
            "tags": {"nofailover": False, "noloadbalance": False, "clonefrom": False, "nosync": False},
        }

    def start_pg(self, node):
        cfg = os.path.join(self.work, f"{node['name']}.yml")
        with open(cfg, "w") as f:
            json.dump(self.patroni_config(node), f)
        node["proc"] = self.spawn(["patroni", cfg], os.path.join(self.work, f"{node['name']}.log"), as_owner=True)

    def role(self, node):
        if get_status(f"http://127.0.0.1:{node['rest']}/primary") == 200:
            return "primary"
        if get_status(f"http://127.0.0.1:{node['rest']}/sync") == 200:
            return "sync"
        return None

    def primary(self):
        return next((n for n in self.pg if self.role(n) == "primary"), None)

    def kill_pg(self, node):
        """The machine dies: Patroni and its PostgreSQL, SIGKILL, no goodbye."""
        pid_file = os.path.join(self.work, node["name"], "postmaster.pid")
        try:
            postmaster = int(open(pid_file).read().split()[0])
        except (OSError, ValueError, IndexError):
            postmaster = None
        os.killpg(node["proc"].pid, signal.SIGKILL)
        node["proc"].wait()
        if postmaster:
            try:
                os.kill(postmaster, signal.SIGKILL)
            except ProcessLookupError:
                pass
        # The backends follow their postmaster; wait until the port is free.
        wait_for(f"{node['name']}'s PostgreSQL to die", lambda: not port_open(node["port"]), 30)

    def start_haproxy(self, nara_ports):
        cfg = os.path.join(self.work, "haproxy.cfg")
        servers_pg = "\n".join(f"  server {n['name']} 127.0.0.1:{n['port']} check port {n['rest']}" for n in self.pg)
        servers_http = "\n".join(f"  server nara{i + 1} 127.0.0.1:{p} check" for i, p in enumerate(nara_ports))
        with open(cfg, "w") as f:
            f.write(f"""global
  maxconn 4000
defaults
  timeout connect 2s
  timeout client 60s
  timeout server 60s
  timeout check 1s
# PostgreSQL: only the node whose Patroni says it is the primary.
listen postgres
  mode tcp
  bind 127.0.0.1:{self.haproxy_pg}
  option httpchk
  http-check send meth GET uri /primary
  http-check expect status 200
  default-server inter 500ms fall 2 rise 1 on-marked-down shutdown-sessions
{servers_pg}
# nara: every node that says it is ready (its database reachable and writable).
listen nara
  mode http
  bind 127.0.0.1:{self.haproxy_http}
  balance roundrobin
  option httpchk
  http-check send meth GET uri /readyz
  http-check expect status 200
  retry-on conn-failure empty-response
  retries 2
  option redispatch
  default-server inter 500ms fall 1 rise 2
{servers_http}
""")
        subprocess.run(["haproxy", "-c", "-q", "-f", cfg], check=True)
        self.spawn(["haproxy", "-db", "-f", cfg], os.path.join(self.work, "haproxy.log"))

    def stop(self):
        for p in self.procs:
            try:
                os.killpg(p.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
        # Postmasters outlive a killed Patroni: stop them by their pid files.
        for n in self.pg:
            try:
                os.kill(int(open(os.path.join(self.work, n["name"], "postmaster.pid")).read().split()[0]), signal.SIGKILL)
            except (OSError, ValueError, IndexError, ProcessLookupError):
                pass


def port_open(port):
    s = socket.socket()
    s.settimeout(0.2)
    try:
        s.connect(("127.0.0.1", port)); return True
    except OSError:
        return False
    finally:
        s.close()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--nara", default=os.environ.get("NARA_BIN", "target/debug/nara"))
    ap.add_argument("--clients", type=int, default=6)
    ap.add_argument("--failovers", type=int, default=1, help="PostgreSQL primaries killed, one after another")
    ap.add_argument("--json", help="write the figures here")
    ap.add_argument("--measure", type=float, default=0, metavar="SECONDS",
                    help="first, rounds of this many seconds each: writes and searches through HAProxy to three nodes against one node direct")
    args = ap.parse_args()
    nara = os.path.abspath(args.nara)

    for tool in ("patroni", "etcd", "haproxy"):
        if not shutil.which(tool):
            raise SystemExit(f"cluster test: {tool} is not installed (Debian: patroni etcd-server haproxy)")
    work = tempfile.mkdtemp(prefix="nara-cluster-")
    owner = "postgres" if os.getuid() == 0 and _user_exists("postgres") else ("nobody" if os.getuid() == 0 else None)
    if owner:
        shutil.chown(work, owner)
    os.chmod(work, 0o755)
    cluster = Cluster(work, owner)
    nodes = []
    try:
        run(args, nara, work, cluster, nodes)
    finally:
        for p in nodes:
            if p["proc"] and p["proc"].poll() is None:
                p["proc"].kill()
        cluster.stop()
        if os.environ.get("NARA_KEEP_CLUSTER"):
            print(f"cluster test: left {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)


def _user_exists(name):
    try:
        pwd.getpwnam(name); return True
    except KeyError:
        return False


def run(args, nara, work, cluster, nodes):
    t0 = time.time()
    cluster.start_etcd()
    for n in cluster.pg:
        cluster.start_pg(n)
    wait_for("a PostgreSQL primary", lambda: cluster.primary() is not None, 120)
    wait_for("a synchronous standby", lambda: any(cluster.role(n) == "sync" for n in cluster.pg), 120)
    print(f"cluster: Patroni primary {cluster.primary()['name']} with a synchronous standby in {time.time() - t0:.1f} s", flush=True)

    nara_ports = [free_port() for _ in range(3)]
    cluster.start_haproxy(nara_ports)
    admin = f"postgres://postgres:{PG_PASSWORD}@127.0.0.1:{cluster.haproxy_pg}"
    wait_for("HAProxy to route to the primary", lambda: port_open(cluster.haproxy_pg) and subprocess.run(
        ["psql", admin + "/postgres", "-qAtc", "SELECT 1"], capture_output=True).returncode == 0, 30)
    subprocess.run(["psql", admin + "/postgres", "-qc", "CREATE DATABASE nara"], check=True)
    url = admin + "/nara"

    # Nodes sharing a database share its keys (ledger.key, identity.key):
    # the first node makes them on its first start; the others get copies.
    data = [os.path.join(work, f"nara{i + 1}") for i in range(3)]
    env = dict(os.environ, NARA_DATA_DIR=data[0], NARA_DATABASE_URL=url, RUST_LOG="warn",
               NARA_RATE_LIMIT_PER_MINUTE="0")
    subprocess.run([nara, "seed", "--scale", "demo"], env=env, check=True, stdout=subprocess.DEVNULL)
    # The demo's registries, access rights and client key, for exchange load.
    subprocess.run([nara, "exchange", "set-up-demo", "--residents", "100"], env=env, check=True, stdout=subprocess.DEVNULL)
    global TOKEN
    TOKEN = subprocess.run([nara, "operator-token", "--username", "cluster-test", "--scopes", "catalogue:write,systems:read", "--days", "1"],
                           env=env, check=True, capture_output=True, text=True).stdout.strip()

    def start_node(i):
        e = dict(env, NARA_DATA_DIR=data[i], NARA_LISTEN=f"127.0.0.1:{nara_ports[i]}")
        p = subprocess.Popen([nara, "serve"], env=e, stdout=subprocess.DEVNULL,
                             stderr=open(os.path.join(work, f"nara{i + 1}.log"), "a"))
        wait_for(f"nara node {i + 1}", lambda: get_status(f"http://127.0.0.1:{nara_ports[i]}/readyz") == 200, 90)
        return p

    nodes.append({"proc": start_node(0)})
    for d in data[1:]:
        shutil.copytree(data[0], d)
    for i in (1, 2):
        nodes.append({"proc": start_node(i)})
    base = f"http://127.0.0.1:{cluster.haproxy_http}"
    wait_for("HAProxy to see the nodes", lambda: get_status(base + "/readyz") == 200, 30)
    vkey = request(base + "/ledger/vkey")[1].decode().strip()
    print(f"cluster: 3 nara nodes behind HAProxy, ready {time.time() - t0:.1f} s after the start", flush=True)

    if args.measure:
        measure(base, f"http://127.0.0.1:{nara_ports[0]}", args.clients, args.measure)

    acknowledged, successes, failures, checkpoints = {}, [], {}, set()
    lock, counter = threading.Lock(), iter(range(10**9))
    stop = threading.Event()

    def failed(kind):
        with lock:
            failures[kind] = failures.get(kind, 0) + 1

    def client():
        while not stop.is_set():
            code = f"CLUSTER-{next(counter):06d}"
            body = {"agency": "KR/GOV/MOIS", "code": code, "name": "Cluster test system", "kind": "server",
                    "grade": 3, "environment": "staging", "status": "operational"}
            # Retry until acknowledged: the same code, so a retry of a write
            # that did commit is refused (409), never written twice.
            deadline = time.time() + 120
            while time.time() < deadline:
                try:
                    status, reply = request(base + "/api/v1/systems", "POST", body, timeout=10)
                    if status == 201:
                        with lock:
                            acknowledged[code] = json.loads(reply)["id"]
                            successes.append(time.time())
                        break
                except urllib.error.HTTPError as e:
                    if e.code == 409:
                        with lock:
                            acknowledged[code] = None  # committed by an attempt whose answer was lost
                            successes.append(time.time())
                        break
                    failed(f"HTTP {e.code}")
                except Exception as e:
                    failed(type(e).__name__)
                time.sleep(0.1)
            else:
                failed("gave up after 120 s")

    exchanged, exchange_failures, duplicate_refused = {}, {}, set()

    def exchanger(n):
        while not stop.is_set():
            xid = f"cluster-{n}-{next(counter):06d}"
            deadline, attempts = time.time() + 120, 0
            while time.time() < deadline:
                attempts += 1
                try:
                    out = subprocess.run([nara, "exchange", "call", "--url", base, "--data", data[0], "--id", xid,
                                          "--subject", "900101-2345678", "--purpose", "benefit-eligibility",
                                          "--legal-basis", "Resident Registration Act art. 29",
                                          "/r1/KR/GOV/MOIS/resident-registry/residents/record"],
                                         capture_output=True, text=True, timeout=15)
                    status = out.stdout.split(" ", 1)[0] if out.returncode == 0 else "no answer"
                except subprocess.TimeoutExpired:
                    status, out = "timeout", None
                if status == "200":
                    with lock:
                        exchanged[xid] = status
                    break
                if attempts > 1 and out is not None and "Client.DuplicateMessageId" in out.stdout:
                    # An earlier attempt committed (its answer lost) or is still in flight.
                    with lock:
                        duplicate_refused.add(xid)
                    break
                with lock:
                    exchange_failures[status] = exchange_failures.get(status, 0) + 1
                time.sleep(0.1)
            else:
                with lock:
                    exchange_failures["gave up after 120 s"] = exchange_failures.get("gave up after 120 s", 0) + 1

    def watcher():
        while not stop.is_set():
            try:
                checkpoints.add(request(base + "/ledger/checkpoint", timeout=2)[1].decode())
            except Exception:
                pass
            time.sleep(0.2)

    threads = ([threading.Thread(target=client) for _ in range(args.clients)] + [threading.Thread(target=watcher)]
               + [threading.Thread(target=exchanger, args=(n,)) for n in range(2)])
    for t in threads:
        t.start()
    time.sleep(3)

    # 1. A nara node dies.
    victim = random.randrange(3)
    nodes[victim]["proc"].send_signal(signal.SIGKILL)
    nodes[victim]["proc"].wait()
    killed_node_at = time.time()
    print(f"cluster: nara node {victim + 1} killed (-9) at {killed_node_at - t0:.1f} s", flush=True)
    time.sleep(3)

    # 2. The PostgreSQL primary dies, as many times as asked; each time the
    # old primary comes back as a standby before the next.
    outages = []
    for n in range(args.failovers):
        old = cluster.primary()
        if old is None:
            raise SystemExit("cluster test: no primary before the failover")
        killed_at = time.time()
        cluster.kill_pg(old)
        wait_for("a new primary", lambda: cluster.primary() is not None, 120)
        promoted_at = time.time()
        wait_for("a write after the failover", lambda: any(s > promoted_at for s in list(successes)), 120)
        # The outage: the longest time between two successful writes from
        # just before the kill to the first write on the new primary (a write
        # answered just after the kill had committed before it).
        with lock:
            window = sorted(s for s in successes if killed_at - 1 <= s)
        first_after = next(s for s in window if s > promoted_at)
        window = [s for s in window if s <= first_after]
        outage = max(b - a for a, b in zip(window, window[1:]))
        outages.append(outage)
        print(f"cluster: primary {old['name']} killed (-9); {cluster.primary()['name']} promoted after "
              f"{promoted_at - killed_at:.1f} s; no write succeeded for {outage:.1f} s", flush=True)
        cluster.start_pg(old)
        wait_for(f"{old['name']} back as a synchronous standby", lambda: cluster.role(old) == "sync", 180)
        print(f"cluster: {old['name']} rejoined as a synchronous standby", flush=True)
        time.sleep(2)

    # 3. The dead nara node comes back.
    nodes[victim]["proc"] = start_node(victim)
    print(f"cluster: nara node {victim + 1} back", flush=True)
    time.sleep(3)
    stop.set()
    for t in threads:
        t.join()

    # The session issued before everything still works, on every node.
    sessions_ok = all(request(f"http://127.0.0.1:{p}/api/v1/systems?per_page=1")[0] == 200 for p in nara_ports)

    # Let the integrator take in everything, then count.
    deadline = time.time() + 60
    while time.time() < deadline:
        note = request(base + "/ledger/checkpoint")[1].decode()
        checkpoints.add(note)
        size = int(note.split("\n")[1])
        pending = subprocess.run(["psql", url, "-qAtc", "SELECT count(*) FROM ledger_pending"], capture_output=True, text=True).stdout.strip()
        if pending == "0":
            break
        time.sleep(0.5)
    problems = []
    present = {}
    page = 1
    while True:
        body = json.loads(request(base + f"/api/v1/systems?q=cluster-&per_page=100&page={page}")[1])
        for s in body["items"]:
            present.setdefault(s["code"], []).append(s["id"])
        if page * 100 >= body["total"]:
            break
        page += 1
    lost = [c for c in acknowledged if c not in present]
    twice = [c for c, ids in present.items() if len(ids) > 1]
    if lost:
        problems.append(f"{len(lost)} acknowledged writes are missing, e.g. {lost[:5]}")
    if twice:
        problems.append(f"{len(twice)} writes are present more than once, e.g. {twice[:5]}")
    rows = subprocess.run(["psql", url, "-qAtc", "SELECT code, count(*) FROM systems WHERE code LIKE 'CLUSTER-%' GROUP BY code HAVING count(*) > 1"],
                          capture_output=True, text=True).stdout.strip()
    if rows:
        problems.append(f"the database holds a code twice: {rows[:200]}")

    note = request(base + "/ledger/checkpoint")[1].decode()
    size = int(note.split("\n")[1])
    subjects = ledger_tiles.subjects(lambda path: request(base + "/ledger/" + path)[1], size)
    logged = {}
    for line in subprocess.run(["psql", url, "-qAtc", "SELECT xroad_id, count(*) FROM exchange_log WHERE xroad_id LIKE 'cluster-%' GROUP BY xroad_id"],
                               capture_output=True, text=True, check=True).stdout.split():
        xid, count = line.split("|")
        logged[xid] = int(count)
    if not exchanged:
        problems.append("no exchange was answered: the exchange load tested nothing")
    unlogged = [x for x in exchanged if logged.get(x, 0) == 0]
    logged_twice = [x for x, c in logged.items() if c > 1]
    # A retry refused as a duplicate whose first attempt never committed: it
    # was refused for nothing (a node remembering a failed attempt's id).
    refused_for_nothing = [x for x in duplicate_refused if logged.get(x, 0) == 0]
    exchange_unrecorded = [x for x in [*exchanged, *(d for d in duplicate_refused if logged.get(d, 0))]
                           if f"xroad_id:{x}" not in subjects]
    if unlogged:
        problems.append(f"{len(unlogged)} answered exchanges are missing from the message log, e.g. {unlogged[:5]}")
    if logged_twice:
        problems.append(f"{len(logged_twice)} exchanges are logged more than once, e.g. {logged_twice[:5]}")
    if exchange_unrecorded:
        problems.append(f"{len(exchange_unrecorded)} answered exchanges have no ledger entry, e.g. {exchange_unrecorded[:5]}")
    ids = {c: (i if i else present.get(c, [None])[0]) for c, i in acknowledged.items()}
    unrecorded = [c for c, i in ids.items() if f"system:{i}" not in subjects]
    if unrecorded:
        problems.append(f"{len(unrecorded)} acknowledged writes have no ledger entry, e.g. {unrecorded[:5]}")
    # The log fetched and checked once, then shown to extend every checkpoint seen.
    saved_dir = os.path.join(work, "checkpoints")
    os.makedirs(saved_dir, exist_ok=True)
    files = []
    for n, cp in enumerate(sorted(checkpoints, key=lambda c: int(c.split("\n")[1]))):
        files += ["--checkpoint", os.path.join(saved_dir, f"{n:05d}")]
        with open(files[-1], "w") as f:
            f.write(cp)
    r = subprocess.run([nara, "ledger", "verify", "--url", base + "/ledger", "--vkey", vkey] + files,
                       capture_output=True, text=True)
    if r.returncode != 0:
        problems.append(f"the ledger against the checkpoints seen: {r.stderr.strip() or r.stdout.strip()}")
    checked = len(files) // 2
    if not sessions_ok:
        problems.append("the API session issued before the failover was refused by a node")

    figures = {
        "acknowledged_writes": len(acknowledged),
        "answers_lost_but_committed": sum(1 for i in acknowledged.values() if i is None),
        "lost": len(lost), "duplicated": len(twice),
        "failed_requests": failures,
        "answered_exchanges": len(exchanged),
        "exchanges_answer_lost_but_committed": len(duplicate_refused) - len(refused_for_nothing),
        "exchange_retries_refused_as_duplicates_never_logged": len(refused_for_nothing),
        "failed_exchange_attempts": exchange_failures,
        "seconds_without_writes_per_failover": [round(o, 2) for o in outages],
        "ledger_size": size, "checkpoints_verified": checked,
        "sessions_valid_on_every_node": sessions_ok,
    }
    print("cluster: " + json.dumps(figures), flush=True)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(figures, f, indent=2)
    if problems:
        for p in problems:
            print("FAIL:", p)
        for name in ["nara1.log", "nara2.log", "nara3.log", "pg1.log", "pg2.log", "haproxy.log"]:
            path = os.path.join(work, name)
            if os.path.exists(path):
                print(f"---- {name} (last lines)")
                print("".join(open(path, errors="replace").readlines()[-15:]))
        sys.exit(1)
    if len(outages) > 1:
        o = sorted(outages)
        print(f"failover: seconds without a successful write over {len(o)} failovers: p50 {o[len(o) // 2]:.1f}, "
              f"p99 {o[min(len(o) - 1, round(0.99 * (len(o) - 1)))]:.1f}, max {o[-1]:.1f}")
    print(f"cluster test passed: {len(acknowledged)} acknowledged writes, each present once and in the ledger; "
          f"{len(exchanged)} answered exchanges, each logged once and in the ledger; "
          f"{checked} checkpoints verified; {', '.join(f'{o:.1f} s' for o in outages)} without a successful write per failover")


def measure(proxied, direct, clients, seconds, rounds=3):
    """Writes and catalogue searches a second, through HAProxy to three nodes
    and to one node direct, rounds interleaved; medians. Two cores serve
    both, so the ratio is the cost of the proxy and the coordination, not
    scaling."""
    counter = iter(range(10**9))

    def rate(base, kind):
        done, stop = [0], threading.Event()
        lock = threading.Lock()

        def worker():
            while not stop.is_set():
                try:
                    if kind == "writes":
                        code = f"MEASURE-{next(counter):07d}"
                        request(base + "/api/v1/systems", "POST", {"agency": "KR/GOV/MOIS", "code": code, "name": "Measured",
                                "kind": "server", "grade": 3, "environment": "staging", "status": "operational"})
                    else:
                        request(base + "/api/v1/services?q=certificate&per_page=10")
                    with lock:
                        done[0] += 1
                except Exception:
                    pass
        threads = [threading.Thread(target=worker) for _ in range(clients)]
        started = time.time()
        for t in threads:
            t.start()
        time.sleep(seconds)
        stop.set()
        for t in threads:
            t.join()
        return done[0] / (time.time() - started)

    figures = {}
    for kind in ("writes", "searches"):
        through, one = [], []
        for _ in range(rounds):
            through.append(rate(proxied, kind))
            one.append(rate(direct, kind))
        t, o = sorted(through)[rounds // 2], sorted(one)[rounds // 2]
        figures[kind] = (t, o)
        print(f"measure: {kind} through HAProxy to 3 nodes {t:.0f}/s, one node direct {o:.0f}/s: ratio {t / o:.2f} "
              f"(medians of {rounds} interleaved rounds of {seconds:.0f} s, {clients} clients)", flush=True)
    return figures


if __name__ == "__main__":
    main()
