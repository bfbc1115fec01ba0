#!/usr/bin/env python3
"""Crash test for the exchange's message log (issue 5, "Reliability").

Runs `nara demo` (SQLite), has agency-system clients fetch records through
the r1 gateway with `nara exchange call`, kills the server with SIGKILL at
random moments, restarts it on the same data, repeats. Then checks that every
exchange that returned a response (HTTP 200, with its X-Road-Id) is in the
message log and has its ledger entry, and that the ledger verifies.

    scripts/exchange-crash-test.py --rounds 3 --nara target/debug/nara
"""
import argparse, os, random, signal, socket, sqlite3, subprocess, tempfile, threading, time, urllib.request


def free_port():
    s = socket.socket(); s.bind(("127.0.0.1", 0)); port = s.getsockname()[1]; s.close(); return port


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--clients", type=int, default=4)
    ap.add_argument("--nara", default="target/debug/nara")
    args = ap.parse_args()
    work = tempfile.mkdtemp(prefix="nara-exchange-crash-")
    data = os.path.join(work, "data")
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    env = dict(os.environ, RUST_LOG="warn")

    def start():
        p = subprocess.Popen([args.nara, "demo", "--data", data, "--listen", f"127.0.0.1:{port}"], env=env,
                             stdout=subprocess.DEVNULL, stderr=open(os.path.join(work, "demo.log"), "a"))
        for _ in range(600):
            try:
                if urllib.request.urlopen(base + "/readyz", timeout=1).status == 200 and os.path.exists(os.path.join(data, "demo-exchange.json")):
                    return p
            except Exception:
                pass
            time.sleep(0.1)
        raise SystemExit("nara demo did not become ready")

    acknowledged, lock, counter = [], threading.Lock(), iter(range(10**9))

    def client(stop, n):
        while not stop.is_set():
            xid = f"crash-{n}-{next(counter)}"
            try:
                out = subprocess.run([args.nara, "exchange", "call", "--url", base, "--data", data, "--id", xid,
                                      "--subject", "900101-2345678", "--purpose", "benefit-eligibility",
                                      "--legal-basis", "Resident Registration Act art. 29",
                                      "/r1/KR/GOV/MOIS/resident-registry/residents/record"],
                                     capture_output=True, text=True, timeout=10)
                if out.returncode == 0 and out.stdout.startswith("200 OK"):
                    with lock:
                        acknowledged.append(xid)
            except Exception:
                pass

    server = start()
    for round_ in range(args.rounds):
        stop = threading.Event()
        threads = [threading.Thread(target=client, args=(stop, i)) for i in range(args.clients)]
        for t in threads:
            t.start()
        time.sleep(random.uniform(1.0, 2.5))
        server.send_signal(signal.SIGKILL)
        server.wait()
        stop.set()
        for t in threads:
            t.join()
        print(f"round {round_ + 1}: killed with {len(acknowledged)} exchanges answered so far", flush=True)
        server = start()

    db = sqlite3.connect(os.path.join(data, "nara.db"))
    logged = {row[0] for row in db.execute("SELECT xroad_id FROM exchange_log WHERE client_id = 'KR/LOC/SEOUL/welfare-portal'")}
    missing = [x for x in acknowledged if x not in logged]
    unrecorded = [x for x in acknowledged
                  if db.execute("SELECT COUNT(*) FROM ledger_entries WHERE instr(entry, ?) > 0",
                                (("xroad_id:" + x).encode(),)).fetchone()[0] == 0]
    vkey = urllib.request.urlopen(base + "/ledger/vkey").read().decode().strip()
    time.sleep(2)
    verify = subprocess.run([args.nara, "ledger", "verify", "--url", base + "/ledger", "--vkey", vkey], capture_output=True, text=True)
    server.send_signal(signal.SIGTERM)
    server.wait()
    if not acknowledged:
        raise SystemExit("no exchange was answered: the test did not test anything")
    if missing or unrecorded or verify.returncode != 0:
        raise SystemExit(f"FAILED: {len(missing)} answered exchanges missing from the log (e.g. {missing[:3]}), "
                         f"{len(unrecorded)} without a ledger entry (e.g. {unrecorded[:3]}); ledger verify: {verify.stdout}{verify.stderr}")
    print(f"exchange crash test passed: {len(acknowledged)} answered exchanges across {args.rounds} kills, "
          f"all in the message log and the ledger; {len(logged)} logged in all; the ledger verifies")


if __name__ == "__main__":
    main()
