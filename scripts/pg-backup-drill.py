#!/usr/bin/env python3
"""The disaster drill on PostgreSQL: a PostgreSQL cluster (the machine's own
binaries) archiving its WAL through pgBackRest as `nara backup pg-setup`
configured it; `nara serve` on it takes writes; `nara backup create` takes a
base backup while they go on; then the disaster — nara killed with SIGKILL,
PostgreSQL stopped without a checkpoint (`-m immediate`), both data
directories deleted. Recovery: `nara restore --pg-data` (the pgBackRest
passphrase unsealed with the backup key alone), PostgreSQL started on the
restored cluster (it replays the archived WAL), `nara backup verify` (the
base backup restored again into scratch space and proven by the ledger),
`nara serve` again. Checks: no write acknowledged more than the promised
recovery point before the disaster is missing, and the served ledger is
consistent with the checkpoint the node published before it. Prints the
recovery point and the recovery time.

    scripts/pg-backup-drill.py --nara target/debug/nara --seconds 8
"""
import argparse, glob, json, os, shutil, signal, socket, subprocess, sys, tempfile, threading, time
import urllib.error, urllib.request

PROMISE_S = 10.0  # archive_timeout (5 s) plus archiving


def free_port():
    s = socket.socket(); s.bind(("127.0.0.1", 0)); port = s.getsockname()[1]; s.close(); return port


def pg_bin(program):
    found = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{program}"))
    if not found:
        sys.exit(f"no {program} under /usr/lib/postgresql/*/bin")
    return found[-1]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--nara", default=os.environ.get("NARA_BIN", "target/debug/nara"))
    ap.add_argument("--seconds", type=int, default=8)
    args = ap.parse_args()
    nara = os.path.abspath(args.nara)
    if shutil.which("pgbackrest") is None:
        sys.exit("pgbackrest is not installed (Debian's package `pgbackrest`)")
    as_root = os.geteuid() == 0
    user = "postgres" if as_root else None
    run_as = ["runuser", "-u", user, "--"] if user else []
    work = tempfile.mkdtemp(prefix="nara-pg-drill-")
    os.chmod(work, 0o755)
    pgdata, node, site, key = f"{work}/pg", f"{work}/node", f"{work}/second-site", f"{work}/vault/backup.key"
    conf = f"{work}/etc/pgbackrest.conf"
    os.makedirs(f"{work}/etc"); os.makedirs(node); os.makedirs(site)
    if user:
        subprocess.run(["chown", user, f"{work}/etc", site, work], check=True)

    def sh(*cmd, **kw):
        return subprocess.run(list(cmd), check=True, capture_output=True, text=True, **kw).stdout

    port = free_port()
    url = f"postgres://postgres@127.0.0.1:{port}/nara"
    env = dict(os.environ, NARA_DATABASE_URL=url, NARA_DATA_DIR=node, NARA_PGBACKREST_CONFIG=conf)
    if user:
        env["NARA_PGBACKREST_RUN_AS"] = user

    print("1. a PostgreSQL cluster archiving its WAL through pgBackRest, set up by `nara backup pg-setup`")
    sh(*run_as, pg_bin("initdb"), "-D", pgdata, "-A", "trust", "-U", "postgres")
    sh(nara, "backup", "keygen", "--out", key)
    setup = sh(nara, "backup", "pg-setup", "--to", site, "--recipient", key, "--pg-data", pgdata,
               "--pg-port", str(port), "--pg-socket", work, "--out", conf, *(["--run-as", user] if user else []))
    archive_command = next(l.split("=", 1)[1].strip() for l in setup.splitlines() if "archive_command" in l)
    with open(f"{pgdata}/postgresql.conf", "a") as f:
        f.write(f"\nport = {port}\nlisten_addresses = '127.0.0.1'\nunix_socket_directories = '{work}'\n"
                f"archive_mode = on\narchive_command = {archive_command}\narchive_timeout = 5\nfsync = on\n")

    def start_pg(data):
        sh(*run_as, pg_bin("pg_ctl"), "-w", "-t", "120", "-D", data, "-l", f"{work}/pg.log", "start")
        # A restored cluster answers while it replays the archive (read-only); wait for the promotion.
        for _ in range(600):
            state = subprocess.run([*run_as, pg_bin("psql"), "-h", "127.0.0.1", "-p", str(port), "-U", "postgres",
                                    "-Atc", "SELECT pg_is_in_recovery()"], capture_output=True, text=True).stdout.strip()
            if state == "f":
                return
            time.sleep(0.2)
        sys.exit("the restored cluster did not finish recovery")

    start_pg(pgdata)
    sh(*run_as, pg_bin("psql"), "-h", "127.0.0.1", "-p", str(port), "-U", "postgres", "-c", "CREATE DATABASE nara")
    sh(nara, "seed", "--scale", "demo", "--database-url", url)
    token = sh(nara, "operator-token", "--username", "drill", "--database-url", url).strip()

    def serve(log):
        listen = free_port()
        p = subprocess.Popen([nara, "serve"], env=dict(env, NARA_LISTEN=f"127.0.0.1:{listen}"),
                             stdout=subprocess.DEVNULL, stderr=open(log, "w"))
        for _ in range(300):
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{listen}/readyz", timeout=2)
                return p, f"http://127.0.0.1:{listen}"
            except (urllib.error.URLError, OSError):
                time.sleep(0.1)
        sys.exit(f"nara serve did not become ready (see {log})")

    server, base = serve(f"{work}/node.log")
    vkey = urllib.request.urlopen(f"{base}/ledger/vkey").read().decode().strip()

    print(f"2. writes for {args.seconds} s; a base backup (`nara backup create`) while they go on")
    acked, stop, lock = [], threading.Event(), threading.Lock()

    def writer(w):
        n = 0
        while not stop.is_set():
            body = json.dumps({"agency": "KR/GOV/MOIS", "code": f"PG-{w}-{n}", "name": "Drill", "kind": "server",
                               "grade": 3, "environment": "staging", "status": "operational"}).encode()
            n += 1
            req = urllib.request.Request(f"{base}/api/v1/systems", data=body, method="POST",
                                         headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"})
            try:
                with urllib.request.urlopen(req, timeout=5) as r:
                    if r.status == 201:
                        with lock:
                            acked.append((json.loads(r.read())["id"], time.time()))
            except (urllib.error.URLError, OSError, ConnectionError):
                pass

    threads = [threading.Thread(target=writer, args=(w,)) for w in range(3)]
    for t in threads:
        t.start()
    time.sleep(args.seconds / 2)
    started = time.monotonic()
    print("   " + sh(nara, "backup", "create", "--to", site, "--recipient", key, env=env).strip().splitlines()[0])
    print(f"   (the base backup took {time.monotonic() - started:.2f} s)")
    time.sleep(args.seconds / 2)
    checkpoint = urllib.request.urlopen(f"{base}/ledger/checkpoint").read().decode()
    time.sleep(PROMISE_S + 1)  # the checkpoint above is now archived for sure

    print("3. the disaster: nara killed with SIGKILL, PostgreSQL stopped without a checkpoint, both data directories deleted")
    disaster = time.time()
    t0 = time.monotonic()
    os.kill(server.pid, signal.SIGKILL)
    server.wait()
    stop.set()
    for t in threads:
        t.join()
    sh(*run_as, pg_bin("pg_ctl"), "-D", pgdata, "-m", "immediate", "stop")
    shutil.rmtree(pgdata)
    shutil.rmtree(node)

    print("4. recovery: `nara restore --pg-data` from the second site, PostgreSQL replays the archive, nara serves again")
    print("   " + sh(nara, "restore", "--from", site, "--key", key, "--data", node, "--pg-data", pgdata,
                    *(["--run-as", user] if user else [])).strip().splitlines()[0])
    start_pg(pgdata)
    server, base = serve(f"{work}/restored.log")
    recovery_time = time.monotonic() - t0
    proof = sh(nara, "backup", "verify", "--from", site, "--key", key, "--database-url", url,
               *(["--run-as", user] if user else [])).strip()
    print("   " + proof)

    print("5. checks")
    lost = []
    for id_, at in acked:
        req = urllib.request.Request(f"{base}/api/v1/systems/{id_}", headers={"Authorization": f"Bearer {token}"})
        try:
            urllib.request.urlopen(req, timeout=5)
        except urllib.error.HTTPError:
            lost.append(disaster - at)
    with open(f"{work}/checkpoint", "w") as f:
        f.write(checkpoint)
    ledger = subprocess.run([nara, "ledger", "verify", "--url", f"{base}/ledger", "--vkey", vkey,
                             "--checkpoint", f"{work}/checkpoint"], capture_output=True, text=True)
    server.kill(); server.wait()
    sh(*run_as, pg_bin("pg_ctl"), "-D", pgdata, "-m", "fast", "stop")
    newest_acked = max(at for _, at in acked)
    print(f"   writes acknowledged: {len(acked)} (the last {max(0.0, disaster - newest_acked):.2f} s before the disaster)")
    print(f"recovery point: every write acknowledged before the disaster is back ({len(lost)} lost)"
          if not lost else f"recovery point: {len(lost)} acknowledged writes lost, the oldest {max(lost):.2f} s before the disaster")
    print(f"recovery time: {recovery_time:.2f} s from the disaster to serving again")
    if ledger.returncode != 0:
        sys.exit(f"the restored ledger: {ledger.stderr.strip() or ledger.stdout.strip()}")
    print("ledger: " + ledger.stdout.strip().splitlines()[-1])
    if lost and max(lost) > PROMISE_S:
        sys.exit(f"writes acknowledged more than {PROMISE_S} s before the disaster are missing")
    shutil.rmtree(work, ignore_errors=True)
    print("The drill passed on PostgreSQL.")


if __name__ == "__main__":
    main()
