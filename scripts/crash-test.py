#!/usr/bin/env python3
"""Crash test for nara's ledger and storage (DESIGN.md invariants 2, 3 and 8).

Kills `nara serve` with SIGKILL at random moments while clients create systems
through the API; restarts it; repeats. Then checks that
  - every write the server acknowledged (HTTP 201) is present,
  - every acknowledged write has its ledger entry,
  - the log verifies, and is consistent with every checkpoint published
    before or after any crash (`nara ledger verify --checkpoint`).

    scripts/crash-test.py --rounds 5                      # SQLite
    scripts/with-postgres.sh scripts/crash-test.py --backend postgres --rounds 5
"""
import argparse, json, os, random, signal, socket, subprocess, sys, tempfile, threading, time
import urllib.error, urllib.request

import ledger_tiles

TOKEN = ""  # issued by `nara operator-token` once the database exists


def free_port():
    s = socket.socket(); s.bind(("127.0.0.1", 0)); port = s.getsockname()[1]; s.close(); return port


def request(url, method="GET", body=None, timeout=5):
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url, data=data, method=method)
    req.add_header("authorization", f"Bearer {TOKEN}")
    if data is not None:
        req.add_header("content-type", "application/json")
    with urllib.request.urlopen(req, timeout=timeout) as r:
        return r.status, r.read()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--backend", choices=["sqlite", "postgres"], default="sqlite")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--clients", type=int, default=4)
    ap.add_argument("--nara", default=os.environ.get("NARA_BIN", "target/debug/nara"))
    args = ap.parse_args()

    work = tempfile.mkdtemp(prefix="nara-crash-")
    env = dict(os.environ, NARA_DATA_DIR=work, RUST_LOG="warn")
    if args.backend == "postgres":
        admin = os.environ["NARA_TEST_POSTGRES_URL"]
        name = f"nara_crash_{random.randrange(1 << 32)}"
        subprocess.run(["psql", admin, "-qc", f"CREATE DATABASE {name}"], check=True)
        env["NARA_DATABASE_URL"] = admin.rsplit("/", 1)[0] + "/" + name
    port = free_port()
    env["NARA_LISTEN"] = f"127.0.0.1:{port}"
    base = f"http://127.0.0.1:{port}"

    subprocess.run([args.nara, "seed", "--scale", "demo"], env=env, check=True, stdout=subprocess.DEVNULL)
    global TOKEN
    TOKEN = subprocess.run([args.nara, "operator-token", "--username", "crash-test", "--scopes", "catalogue:write,systems:read", "--days", "1"],
                           env=env, check=True, capture_output=True, text=True).stdout.strip()

    acknowledged, checkpoints, lock = [], set(), threading.Lock()
    counter = iter(range(10**9))

    def start():
        p = subprocess.Popen([args.nara, "serve"], env=env, stdout=subprocess.DEVNULL, stderr=open(os.path.join(work, "serve.log"), "a"))
        for _ in range(200):
            try:
                if request(base + "/readyz", timeout=1)[0] == 200:
                    return p
            except Exception:
                time.sleep(0.05)
        raise SystemExit("nara did not become ready")

    def client(stop):
        while not stop.is_set():
            code = f"CRASH-{next(counter):06d}"
            body = {"agency": "KR/GOV/MOIS", "code": code, "name": "Crash test system", "kind": "server",
                    "grade": 3, "environment": "staging", "status": "operational"}
            try:
                status, reply = request(base + "/api/v1/systems", "POST", body)
                if status == 201:
                    with lock:
                        acknowledged.append((code, json.loads(reply)["id"]))
            except Exception:
                pass  # in flight when the server died: not acknowledged, may or may not exist

    def watcher(stop):
        while not stop.is_set():
            try:
                checkpoints.add(request(base + "/ledger/checkpoint", timeout=1)[1].decode())
            except Exception:
                pass
            time.sleep(0.05)

    server = start()
    vkey = request(base + "/ledger/vkey")[1].decode().strip()
    for round_ in range(args.rounds):
        stop = threading.Event()
        threads = [threading.Thread(target=client, args=(stop,)) for _ in range(args.clients)]
        threads.append(threading.Thread(target=watcher, args=(stop,)))
        for t in threads:
            t.start()
        time.sleep(random.uniform(0.3, 1.5))
        server.send_signal(signal.SIGKILL)
        server.wait()
        stop.set()
        for t in threads:
            t.join()
        print(f"round {round_ + 1}: killed with {len(acknowledged)} writes acknowledged so far", flush=True)
        server = start()

    # Let the integrator include everything, then look.
    deadline = time.time() + 30
    while time.time() < deadline:
        checkpoints.add(request(base + "/ledger/checkpoint")[1].decode())
        time.sleep(0.5)
        size = int(request(base + "/ledger/checkpoint")[1].decode().split("\n")[1])
        total = json.loads(request(base + "/api/v1/systems?per_page=1")[1])["total"]
        if size >= 240 + (total - 200):
            break
    failures = []
    present = {}
    page = 1
    while True:
        body = json.loads(request(base + f"/api/v1/systems?q=crash-&per_page=100&page={page}")[1])
        for s in body["items"]:
            present[s["code"]] = s["id"]
        if page * 100 >= body["total"]:
            break
        page += 1
    lost = [c for c, _ in acknowledged if c not in present]
    if lost:
        failures.append(f"{len(lost)} acknowledged writes are missing, e.g. {lost[:5]}")

    # Every acknowledged write has its entry: read the whole log's entry bundles.
    note = request(base + "/ledger/checkpoint")[1].decode()
    size = int(note.split("\n")[1])
    subjects = ledger_tiles.subjects(lambda path: request(base + "/ledger/" + path)[1], size)
    unrecorded = [c for c, id_ in acknowledged if f"system:{id_}" not in subjects]
    if unrecorded:
        failures.append(f"{len(unrecorded)} acknowledged writes have no ledger entry, e.g. {unrecorded[:5]}")

    # The log is consistent with every checkpoint ever published.
    checked = 0
    for cp in sorted(checkpoints, key=lambda c: int(c.split("\n")[1])):
        saved = os.path.join(work, "saved.checkpoint")
        with open(saved, "w") as f:
            f.write(cp)
        r = subprocess.run([args.nara, "ledger", "verify", "--url", base + "/ledger", "--vkey", vkey, "--checkpoint", saved],
                           capture_output=True, text=True)
        if r.returncode != 0:
            failures.append(f"checkpoint of size {cp.split(chr(10))[1]}: {r.stderr.strip() or r.stdout.strip()}")
        checked += 1
    server.send_signal(signal.SIGTERM)
    server.wait()
    print(f"{args.backend}: {args.rounds} kills, {len(acknowledged)} acknowledged writes, all present: {not lost}; "
          f"log of {size} entries verified against {checked} published checkpoints")
    if failures:
        for f in failures:
            print("FAIL:", f)
        sys.exit(1)
    print("crash test passed")


if __name__ == "__main__":
    main()
