#!/usr/bin/env python3
"""Crash test for backups: `nara backup create` killed with SIGKILL at random
moments, again and again, into one destination. Then checks that
  - every backup `nara backup list` shows is complete: `nara backup verify`
    restores and proves each one by the ledger (never one that verifies but
    is incomplete, never one that is listed and does not verify),
  - a backup taken after all the crashes succeeds and verifies,
  - restoring into an empty directory works from the destination as the
    crashes left it (partial files, temporary snapshots and all).

    scripts/backup-crash-test.py --rounds 20 --nara target/debug/nara
"""
import argparse, os, random, re, signal, socket, sqlite3, subprocess, sys, tempfile, time
import urllib.error, urllib.request


def free_port():
    s = socket.socket(); s.bind(("127.0.0.1", 0)); port = s.getsockname()[1]; s.close(); return port


def run(nara, *args):
    return subprocess.run([nara, *args], check=True, capture_output=True, text=True).stdout


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=20)
    ap.add_argument("--nara", default=os.environ.get("NARA_BIN", "target/debug/nara"))
    args = ap.parse_args()
    random.seed(int(os.environ.get("NARA_CRASH_SEED", "14")))
    work = tempfile.mkdtemp(prefix="nara-backup-crash-")
    data, site, key = f"{work}/data", f"{work}/site", f"{work}/backup.key"
    os.makedirs(data)
    # A node's data directory: the national seed (tens of MiB) with its ledger entries.
    run(args.nara, "seed", "--scale", "national", "--seed", "7", "--database-url", f"sqlite://{data}/nara.db")
    # Served once, so the ledger's entries are integrated under signed checkpoints.
    port = free_port()
    env = dict(os.environ, NARA_DATA_DIR=data, NARA_LISTEN=f"127.0.0.1:{port}")
    server = subprocess.Popen([args.nara, "serve"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    size = 0
    for _ in range(300):
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/ledger/checkpoint", timeout=2) as r:
                size = int(r.read().decode().split("\n")[1])
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2) as r:
                pass
        except urllib.error.HTTPError:
            pass
        except OSError:
            pass
        if size >= 46_000:
            break
        time.sleep(0.2)
    server.send_signal(signal.SIGTERM)
    server.wait()
    if size < 46_000:
        sys.exit(f"the ledger was not integrated (checkpoint at {size})")
    print(f"the node's ledger: {size} entries under signed checkpoints")
    run(args.nara, "backup", "keygen", "--out", key)

    # How long an undisturbed backup takes, to kill within it.
    started = time.monotonic()
    run(args.nara, "backup", "create", "--to", site, "--recipient", key, "--data", data)
    whole = time.monotonic() - started
    print(f"an undisturbed backup takes {whole:.2f} s; killing {args.rounds} more at random moments up to 1.5 times that")
    killed = 0
    for n in range(args.rounds):
        # A change, so each backup writes a new database object (as a serving node's would).
        db = sqlite3.connect(f"{data}/nara.db")
        db.execute("INSERT INTO security_events (at, kind, username, address, detail) VALUES (?, 'drill.write', 'crash-test', '', ?)",
                   (int(time.time() * 1000), f"round {n}"))
        db.commit()
        db.close()
        p = subprocess.Popen([args.nara, "backup", "create", "--to", site, "--recipient", key, "--data", data],
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(random.uniform(0.0, whole * 1.5))
        if p.poll() is None:
            os.kill(p.pid, signal.SIGKILL)
            killed += 1
        p.wait()
    print(f"{killed} of {args.rounds} runs killed mid-backup")

    listed = [line.split()[0] for line in run(args.nara, "backup", "list", "--to", site).splitlines() if re.match(r"^\d{8}T", line)]
    print(f"{len(listed)} backups listed; verifying each")
    for backup in listed:
        run(args.nara, "backup", "verify", "--from", site, "--key", key, "--id", backup)
    out = run(args.nara, "backup", "create", "--to", site, "--recipient", key, "--data", data)
    print(out.strip().splitlines()[0])
    run(args.nara, "backup", "verify", "--from", site, "--key", key)
    target = f"{work}/restored"
    run(args.nara, "restore", "--from", site, "--key", key, "--data", target)
    if not os.path.exists(f"{target}/nara.db"):
        sys.exit("the restore wrote no database")
    leftovers = sum(len(files) for _, _, files in os.walk(f"{site}/tmp")) + sum(
        1 for root, _, files in os.walk(f"{site}/objects") for f in files if f.endswith(".partial"))
    print(f"the crashes left {leftovers} partial or temporary files behind; none is listed or used (a backup removes them once an hour old)")
    print(f"OK: every listed backup ({len(listed)}) verifies; a backup after {killed} crashes succeeds, verifies and restores")


if __name__ == "__main__":
    main()
