package bt

import (
	"context"
	"net/netip"
	"testing"
)

// BenchmarkSeederToLeecher measures one empty node fetching a 16 MiB file from one seeder
// over loopback (node start-up included).
func BenchmarkSeederToLeecher(b *testing.B) {
	fx := newFixture(b, 16<<20, 20)
	seed := fx.seedFile(b)
	seeder := startNode(b, "127.0.0.1", nil)
	addPkg(b, seeder, Package{MetaInfo: fx.mi, Data: seed, Have: fx.all()})
	b.SetBytes(int64(len(fx.src)))
	for b.Loop() {
		b.StopTimer()
		part := fx.partFile(b, nil)
		b.StartTimer()
		n := startNode(b, "127.0.0.1", nil)
		tor := addPkg(b, n, Package{MetaInfo: fx.mi, Data: part, Peers: []netip.AddrPort{seeder.Addr()}})
		if err := tor.Download(context.Background()); err != nil {
			b.Fatal(err)
		}
		if err := n.Close(); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkOriginOnly measures the origin path alone: an origin that copies from memory,
// so what is left is scheduling, verification and the library's bookkeeping.
func BenchmarkOriginOnly(b *testing.B) {
	fx := newFixture(b, 16<<20, 21)
	b.SetBytes(int64(len(fx.src)))
	for b.Loop() {
		b.StopTimer()
		part := fx.partFile(b, nil)
		b.StartTimer()
		n := startNode(b, "127.0.0.1", nil)
		var o origin
		tor := addPkg(b, n, Package{MetaInfo: fx.mi, Data: part, Origin: o.fetch(fx, part, false)})
		if err := tor.Download(context.Background()); err != nil {
			b.Fatal(err)
		}
		if err := n.Close(); err != nil {
			b.Fatal(err)
		}
	}
}
