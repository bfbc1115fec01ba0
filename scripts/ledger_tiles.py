"""Reading a nara ledger's entries over HTTP (C2SP tlog tiles), for the crash
and cluster tests: the subjects every entry names."""
import struct


def subjects(fetch, size):
    """Every subject named by the first `size` entries; `fetch(path)` returns
    the bytes served at `/ledger/<path>`."""
    found = set()
    for n in range((size + 255) // 256):
        width = min(256, size - n * 256)
        groups, m = [f"{n % 1000:03d}"], n // 1000
        while m:
            groups.append(f"x{m % 1000:03d}"); m //= 1000
        path = "/".join(reversed(groups))
        suffix = "" if width == 256 else f".p/{width}"
        bundle = fetch(f"tile/entries/{path}{suffix}")
        i = 0
        while i < len(bundle):
            (length,) = struct.unpack(">H", bundle[i:i + 2]); entry = bundle[i + 2:i + 2 + length]; i += 2 + length
            # version, kind, time, actor, then the subjects (each length-prefixed).
            j = 1; k = entry[j]; j += 1 + k + 8; a = entry[j]; j += 1 + a; count = entry[j]; j += 1
            for _ in range(count):
                (l,) = struct.unpack(">H", entry[j:j + 2]); found.add(entry[j + 2:j + 2 + l].decode()); j += 2 + l
    return found
