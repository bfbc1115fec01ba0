#!/usr/bin/env python3
"""Crash test for continuous backup: a node (`nara serve`, continuously backed
up to a second site) takes writes from several clients and is killed with
SIGKILL at a random moment, again and again (50 cycles by default); after each
kill the second site is restored onto a fresh directory (`nara restore`), and
  - every write acknowledged more than the promised recovery point (3 s)
    before the kill is in the restore,
  - the restored ledger agrees with every checkpoint the node published
    before the kill (the same root at each size the restore holds; a
    checkpoint it lacks was published within the recovery point),
  - the restored database passes SQLite's integrity check.
The node restarts on its own data directory after each kill (SQLite's crash
recovery) and begins a new generation. Every tenth restore is itself killed
midway first: the half-restored target is refused, then replaced whole. At the end `nara backup verify` proves
the newest backup by the ledger. Every seventh node is killed moments after it
is ready, so what the one before kept only on its own disk must be shipped
before a restarted node takes writes. Prints recovery points p50/p99.

    scripts/stream-crash-test.py --cycles 50 --nara target/debug/nara
"""
import argparse, json, os, random, shutil, signal, socket, sqlite3, subprocess, sys, tempfile, threading, time
import urllib.error, urllib.request

PROMISE_S = 3.0


def free_port():
    s = socket.socket(); s.bind(("127.0.0.1", 0)); port = s.getsockname()[1]; s.close(); return port


def run(nara, *args):
    return subprocess.run([nara, *args], check=True, capture_output=True, text=True).stdout


def get(url, token=None, timeout=2):
    req = urllib.request.Request(url)
    if token:
        req.add_header("Authorization", f"Bearer {token}")
    with urllib.request.urlopen(req, timeout=timeout) as r:
        return r.read().decode()


def percentile(values, p):
    values = sorted(values)
    return values[min(len(values) - 1, int(round(p / 100 * (len(values) - 1))))] if values else 0.0


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--cycles", type=int, default=50)
    ap.add_argument("--writers", type=int, default=4)
    ap.add_argument("--nara", default=os.environ.get("NARA_BIN", "target/debug/nara"))
    args = ap.parse_args()
    random.seed(int(os.environ.get("NARA_CRASH_SEED", "14")))
    work = tempfile.mkdtemp(prefix="nara-stream-crash-")
    data, site, key = f"{work}/data", f"{work}/site", f"{work}/vault/backup.key"
    os.makedirs(data)
    run(args.nara, "seed", "--scale", "demo", "--database-url", f"sqlite://{data}/nara.db")
    token = run(args.nara, "operator-token", "--username", "crash", "--database-url", f"sqlite://{data}/nara.db").strip()
    recipient = run(args.nara, "backup", "keygen", "--out", key).strip().split()[-1]
    if not recipient.startswith("age1"):
        sys.exit(f"no recipient in the keygen output: {recipient!r}")
    port = free_port()
    env = dict(os.environ, NARA_DATA_DIR=data, NARA_LISTEN=f"127.0.0.1:{port}", NARA_BACKUP_TO=site,
               NARA_BACKUP_RECIPIENT=recipient, NARA_BACKUP_EVERY_SECONDS="3600")
    base = f"http://127.0.0.1:{port}"
    acked = []            # (code, acknowledged at, epoch seconds)
    published = {}        # ledger size -> (root base64, seen at)
    recovery_points, restore_times, lost_total = [], [], 0
    for cycle in range(args.cycles):
        log = open(f"{work}/node-{cycle % 2}.log", "w")
        server = subprocess.Popen([args.nara, "serve"], env=env, stdout=subprocess.DEVNULL, stderr=log)
        for _ in range(300):
            try:
                get(f"{base}/readyz")
                break
            except (urllib.error.URLError, OSError):
                time.sleep(0.05)
        else:
            sys.exit(f"cycle {cycle}: the node did not become ready (see {work}/node-{cycle % 2}.log)")
        stop = threading.Event()
        lock = threading.Lock()

        def writer(w):
            n = 0
            while not stop.is_set():
                code = f"C{cycle}-W{w}-{n}"
                n += 1
                body = json.dumps({"agency": "KR/GOV/MOIS", "code": code, "name": "Crash", "kind": "server",
                                   "grade": 3, "environment": "staging", "status": "operational"}).encode()
                req = urllib.request.Request(f"{base}/api/v1/systems", data=body, method="POST",
                                             headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"})
                try:
                    with urllib.request.urlopen(req, timeout=5) as r:
                        if r.status == 201:
                            with lock:
                                acked.append((code, time.time()))
                except (urllib.error.URLError, OSError, ConnectionError):
                    pass

        def watcher():
            while not stop.is_set():
                try:
                    lines = get(f"{base}/ledger/checkpoint").split("\n")
                    with lock:
                        published.setdefault(int(lines[1]), (lines[2], time.time()))
                except (urllib.error.URLError, OSError, ValueError, IndexError):
                    pass
                time.sleep(0.2)

        threads = [threading.Thread(target=writer, args=(w,)) for w in range(args.writers)]
        threads.append(threading.Thread(target=watcher))
        for t in threads:
            t.start()
        # Every seventh node dies moments after it is ready: what the previous one
        # kept only on its own disk must already be at the second site by then.
        time.sleep(random.uniform(0.05, 0.4) if cycle % 7 == 6 else random.uniform(1.0, 3.0))
        os.kill(server.pid, signal.SIGKILL)
        killed_at = time.time()
        server.wait()
        stop.set()
        for t in threads:
            t.join()
        log.close()

        target = f"{work}/restored"
        shutil.rmtree(target, ignore_errors=True)
        replace = []
        if cycle % 10 == 9:
            # A restore killed midway leaves a target that is refused, then replaced whole.
            p = subprocess.Popen([args.nara, "restore", "--from", site, "--key", key, "--data", target],
                                 stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            time.sleep(random.uniform(0.0, 0.15))
            if p.poll() is None:
                os.kill(p.pid, signal.SIGKILL)
            p.wait()
            if os.path.isdir(target) and os.listdir(target):
                refused = subprocess.run([args.nara, "restore", "--from", site, "--key", key, "--data", target],
                                         capture_output=True, text=True)
                if refused.returncode == 0 or "not empty" not in refused.stderr:
                    sys.exit(f"cycle {cycle}: a restore into a non-empty target was not refused: {refused.stderr}")
                replace = ["--replace"]
        started = time.monotonic()
        out = run(args.nara, "restore", "--from", site, "--key", key, "--data", target, *replace)
        restore_times.append(time.monotonic() - started)
        db = sqlite3.connect(f"file:{target}/nara.db?mode=ro", uri=True)
        integrity = db.execute("PRAGMA integrity_check").fetchone()[0]
        if integrity != "ok":
            sys.exit(f"cycle {cycle}: the restored database fails its integrity check: {integrity}")
        present = {row[0] for row in db.execute("SELECT code FROM systems WHERE code LIKE 'C%'")}
        roots = {size: root for size, root in db.execute("SELECT size, root FROM ledger_checkpoints")}
        restored_size = max(roots) if roots else 0
        db.close()
        with lock:
            mine = [(c, at) for c, at in acked if c.startswith(f"C{cycle}-")]
            seen = dict(published)
        lost = [(c, killed_at - at) for c, at in mine if c not in present]
        too_old = [(c, round(age, 2)) for c, age in lost if age > PROMISE_S]
        if too_old:
            sys.exit(f"cycle {cycle}: {len(too_old)} writes acknowledged more than {PROMISE_S} s before the kill are missing: {too_old[:5]}")
        for c, _ in acked:
            if not c.startswith(f"C{cycle}-") and c not in present:
                sys.exit(f"cycle {cycle}: {c}, acknowledged in an earlier cycle and kept by the node, is missing now "
                         f"({killed_at - dict(acked)[c]:.2f} s after it was acknowledged)")
        import base64
        for size, (root_b64, at) in seen.items():
            if size in roots:
                if base64.b64encode(bytes(roots[size])).decode() != root_b64:
                    sys.exit(f"cycle {cycle}: the restored ledger's root at {size} is not the one published")
            elif size > restored_size:
                if killed_at - at > PROMISE_S:
                    sys.exit(f"cycle {cycle}: checkpoint {size}, published {killed_at - at:.2f} s before the kill, is not restored")
        newest_present = max((at for c, at in mine if c in present), default=None)
        recovery_points.append(max((age for _, age in lost), default=0.0))
        lost_total += len(lost)
        # Writes lost with the primary are acknowledged-but-lost: the next cycle's node
        # restarts on its own directory (which kept them), so they are not counted again.
        print(f"cycle {cycle + 1:>2}/{args.cycles}: {len(mine):>4} writes acknowledged, {len(lost):>3} within "
              f"{recovery_points[-1]:.2f} s of the kill not yet shipped; ledger {restored_size} restored "
              f"({restore_times[-1]:.2f} s)", flush=True)
        if newest_present is None and mine and not lost:
            sys.exit(f"cycle {cycle}: nothing restored")
        # What the node itself kept (its own crash recovery) is what the next cycle checks against.
        node = sqlite3.connect(f"{data}/nara.db", timeout=10)
        kept = {row[0] for row in node.execute("SELECT code FROM systems WHERE code LIKE 'C%'")}
        node.close()
        missing_on_node = [c for c, _ in mine if c not in kept]
        if missing_on_node:
            sys.exit(f"cycle {cycle}: the node itself lost acknowledged writes after kill -9: {missing_on_node[:5]}")

    print(run(args.nara, "backup", "verify", "--from", site, "--key", key).strip())
    print(f"{args.cycles} kill -9 cycles under load, each restored from the second site: "
          f"recovery point p50 {percentile(recovery_points, 50):.2f} s, p99 {percentile(recovery_points, 99):.2f} s, "
          f"max {max(recovery_points):.2f} s (promise {PROMISE_S} s); restore p50 {percentile(restore_times, 50):.2f} s; "
          f"{len(acked)} writes acknowledged, {lost_total} not yet shipped at a kill")
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
