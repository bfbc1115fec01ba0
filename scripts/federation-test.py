#!/usr/bin/env python3
"""Two nara nodes as two processes on loopback, federated by a signed global
configuration (issue 5, "Federation without a central data hub").

Node "seoul" serves Seoul's welfare portal (the client), node "sejong" the
ministries and their registries. A citizen's record is fetched from sejong's
residents registry through seoul's gateway; both nodes log the exchange with
both gateways' signatures. A configuration signed by another key is refused.

    scripts/federation-test.py --nara target/debug/nara
"""
import argparse, json, os, socket, sqlite3, subprocess, tempfile, time, urllib.request


def free_port():
    s = socket.socket(); s.bind(("127.0.0.1", 0)); port = s.getsockname()[1]; s.close(); return port


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--nara", default="target/debug/nara")
    args = ap.parse_args()
    nara = args.nara
    work = tempfile.mkdtemp(prefix="nara-federation-")
    nodes = {"seoul": (os.path.join(work, "seoul"), free_port()), "sejong": (os.path.join(work, "sejong"), free_port())}
    keys = {}
    for name, (data, _) in nodes.items():
        out = subprocess.run([nara, "exchange", "node-key"], env=dict(os.environ, NARA_DATA_DIR=data, NARA_NODE_ID=name),
                             check=True, capture_output=True, text=True).stdout.split()
        assert out[0] == f"gateway:{name}", out
        keys[name] = out[1]
    skey = os.path.join(work, "globalconf.skey")
    vkey = subprocess.run([nara, "globalconf", "keygen", "--name", "kr.gov/globalconf", "--out", skey],
                          check=True, capture_output=True, text=True).stdout.strip()
    conf = {
        "instance": "KR", "version": 1,
        "nodes": [{"id": n, "address": f"http://127.0.0.1:{p}", "key": keys[n]} for n, (_, p) in nodes.items()],
        "members": [{"id": "KR/LOC/SEOUL", "node": "seoul", "name": "Seoul Metropolitan Government"}]
                   + [{"id": m, "node": "sejong", "name": m} for m in ["KR/GOV/MOIS", "KR/GOV/NTS", "KR/GOV/MOHW", "KR/GOV/MOEL", "KR/GOV/MOLIT"]],
    }
    conf_path, note = os.path.join(work, "globalconf.json"), os.path.join(work, "globalconf.note")
    json.dump(conf, open(conf_path, "w"))
    subprocess.run([nara, "globalconf", "sign", "--key", skey, conf_path, "--out", note], check=True, stdout=subprocess.DEVNULL)

    # A node given a configuration signed by another key refuses to start.
    other = os.path.join(work, "other.skey")
    other_vkey = subprocess.run([nara, "globalconf", "keygen", "--name", "kr.gov/globalconf", "--out", other],
                                check=True, capture_output=True, text=True).stdout.strip()
    bad = subprocess.run([nara, "demo", "--data", os.path.join(work, "bad"), "--listen", f"127.0.0.1:{free_port()}"],
                         env=dict(os.environ, NARA_GLOBAL_CONF=note, NARA_GLOBAL_CONF_KEY=other_vkey, NARA_NODE_ID="seoul"),
                         capture_output=True, text=True, timeout=120)
    assert bad.returncode != 0 and "signature" in bad.stderr, bad.stderr[-500:]

    procs = []
    try:
        for name, (data, port) in nodes.items():
            env = dict(os.environ, NARA_GLOBAL_CONF=note, NARA_GLOBAL_CONF_KEY=vkey, NARA_NODE_ID=name, RUST_LOG="warn")
            procs.append(subprocess.Popen([nara, "demo", "--data", data, "--listen", f"127.0.0.1:{port}"], env=env,
                                          stdout=open(os.path.join(work, f"{name}.out"), "w"), stderr=subprocess.STDOUT))
        for name, (data, port) in nodes.items():
            for _ in range(600):
                try:
                    if urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=1).status == 200 and os.path.exists(os.path.join(data, "demo-exchange.json")):
                        break
                except Exception:
                    pass
                time.sleep(0.1)
        seoul_data, seoul_port = nodes["seoul"]
        out = subprocess.run([nara, "exchange", "call", "--url", f"http://127.0.0.1:{seoul_port}", "--data", seoul_data, "--id", "federated-1",
                              "--subject", "900101-2345678", "--purpose", "benefit-eligibility", "--legal-basis", "Resident Registration Act art. 29",
                              "/r1/KR/GOV/MOIS/resident-registry/residents/record"], capture_output=True, text=True, check=True).stdout
        assert out.startswith("200 OK"), out
        assert "Kim Minji" in out and "x-road-service: KR/GOV/MOIS/resident-registry/residents" in out, out
        rows = {}
        for name, (data, _) in nodes.items():
            db = sqlite3.connect(os.path.join(data, "nara.db"))
            rows[name] = db.execute("SELECT request_hash, response_hash, gateway_signature, peer_signature FROM exchange_log WHERE xroad_id = 'federated-1'").fetchone()
            assert rows[name], f"node {name} did not log the exchange"
        assert rows["seoul"][0] == rows["sejong"][0] and rows["seoul"][1] == rows["sejong"][1], rows
        assert rows["seoul"][3] == rows["sejong"][2], "seoul keeps sejong's signature"
        print(f"federation test passed: two processes, record fetched from sejong through seoul, logged and signed on both")
    finally:
        for p in procs:
            p.terminate()
            p.wait()


if __name__ == "__main__":
    main()
