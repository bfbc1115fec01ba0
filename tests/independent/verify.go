// Verifies a running nara's ledger with Go's own transparency-log packages,
// golang.org/x/mod/sumdb/note and golang.org/x/mod/sumdb/tlog (as Debian
// packages them) — an implementation nara did not write. It checks the
// checkpoint's signed note, rebuilds the tree hash from the C2SP tiles (Go's
// tile reader authenticates every tile against the signed root), proves every
// entry's inclusion, and, given an older checkpoint, proves consistency.
//
//	GO111MODULE=off GOPATH=/usr/share/gocode go run verify.go URL VKEY [OLD_CHECKPOINT_FILE]
package main

import (
	"encoding/base64"
	"encoding/binary"
	"fmt"
	"io"
	"net/http"
	"os"
	"strconv"
	"strings"

	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"
)

func get(url string) []byte {
	resp, err := http.Get(url)
	if err != nil {
		fail("fetching %s: %v", url, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != 200 {
		fail("fetching %s: HTTP %d %v", url, resp.StatusCode, err)
	}
	return body
}

func fail(format string, args ...interface{}) {
	fmt.Fprintf(os.Stderr, "go verifier: FAIL: "+format+"\n", args...)
	os.Exit(1)
}

// tiles serves Go's tile reader from C2SP tlog-tiles, which name a tile
// tile/<L>/<N> where Go's sumdb names it tile/<H>/<L>/<N> (H = 8 here).
type tiles struct{ base string }

func (t tiles) Height() int { return 8 }

func (t tiles) ReadTiles(ts []tlog.Tile) ([][]byte, error) {
	out := make([][]byte, len(ts))
	for i, tile := range ts {
		out[i] = get(t.base + "/tile/" + strings.TrimPrefix(tile.Path(), "tile/8/"))
	}
	return out, nil
}

func (t tiles) SaveTiles([]tlog.Tile, [][]byte) {}

func parseCheckpoint(text, origin string) tlog.Tree {
	lines := strings.Split(text, "\n")
	if len(lines) < 4 || lines[0] != origin {
		fail("checkpoint origin %q, expected %q", lines[0], origin)
	}
	n, err := strconv.ParseInt(lines[1], 10, 64)
	if err != nil {
		fail("checkpoint size: %v", err)
	}
	raw, err := base64.StdEncoding.DecodeString(lines[2])
	if err != nil || len(raw) != tlog.HashSize {
		fail("checkpoint root hash: %v", err)
	}
	var h tlog.Hash
	copy(h[:], raw)
	return tlog.Tree{N: n, Hash: h}
}

func main() {
	if len(os.Args) < 3 {
		fail("usage: verify URL VKEY [OLD_CHECKPOINT_FILE]")
	}
	base := strings.TrimRight(os.Args[1], "/")
	verifier, err := note.NewVerifier(strings.TrimSpace(os.Args[2]))
	if err != nil {
		fail("verifier key: %v", err)
	}
	open := func(msg []byte) tlog.Tree {
		n, err := note.Open(msg, note.VerifierList(verifier))
		if err != nil {
			fail("signed note: %v", err)
		}
		return parseCheckpoint(n.Text, verifier.Name())
	}
	tree := open(get(base + "/checkpoint"))
	reader := tlog.TileHashReader(tree, tiles{base})
	root, err := tlog.TreeHash(tree.N, reader)
	if err != nil || root != tree.Hash {
		fail("tree hash from tiles: %v (got %v, signed %v)", err, root, tree.Hash)
	}
	// Every entry, from the entry bundles, is proven included.
	var index int64
	for bundle := int64(0); index < tree.N; bundle++ {
		width := tree.N - bundle*256
		t := tlog.Tile{H: 8, L: 0, N: bundle, W: 256}
		if width < 256 {
			t.W = int(width)
		}
		data := get(base + "/tile/entries/" + strings.TrimPrefix(t.Path(), "tile/8/0/"))
		for len(data) > 0 {
			size := int(binary.BigEndian.Uint16(data))
			entry := data[2 : 2+size]
			data = data[2+size:]
			proof, err := tlog.ProveRecord(tree.N, index, reader)
			if err != nil {
				fail("proving entry %d: %v", index, err)
			}
			if err := tlog.CheckRecord(proof, tree.N, tree.Hash, index, tlog.RecordHash(entry)); err != nil {
				fail("entry %d is not in the signed tree: %v", index, err)
			}
			index++
		}
	}
	fmt.Printf("go verifier: OK: signed checkpoint of %d entries; tree hash rebuilt from tiles; every entry proven included\n", tree.N)
	if len(os.Args) > 3 {
		old, err := os.ReadFile(os.Args[3])
		if err != nil {
			fail("reading %s: %v", os.Args[3], err)
		}
		earlier := open(old)
		proof, err := tlog.ProveTree(tree.N, earlier.N, reader)
		if err != nil {
			fail("proving consistency: %v", err)
		}
		if err := tlog.CheckTree(proof, tree.N, tree.Hash, earlier.N, earlier.Hash); err != nil {
			fail("not consistent with the checkpoint of %d entries: %v", earlier.N, err)
		}
		fmt.Printf("go verifier: OK: consistent with the earlier checkpoint of %d entries\n", earlier.N)
	}
}
