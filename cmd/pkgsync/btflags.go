package main

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/spf13/pflag"

	"github.com/pkgsync/pkgsync/bt"
	"github.com/pkgsync/pkgsync/topology"
)

// btFlags are the swarm flags shared by update and seed. Defaults suit a data center: fast and
// trusted links, so no tit-for-tat, no encryption, no DHT/PEX/LPD and no rate caps.
type btFlags struct {
	listen                     string
	titForTat, encrypt         bool
	noFastPath                 bool
	dht, pex, lpd              bool
	maxConns                   int
	maxUp, maxDown, topologyFn string
}

func (b *btFlags) register(fs *pflag.FlagSet) {
	d := bt.DefaultConfig()
	fs.StringVar(&b.listen, "listen", d.ListenAddr, "BitTorrent listen address HOST:PORT (port 0: any free port)")
	fs.StringVar(&b.topologyFn, "topology", "", "file mapping CIDRs to site names (\"10.1.0.0/16 dc1/rack3\" per line): prefer peers of the same site;\nwhen it places the origin too, a site without the origin crosses to other sites through one node only\n(its gateway, the lowest address), so each piece crosses the inter-site link about once")
	fs.StringVar(&b.maxUp, "max-upload-rate", "", "cap upload, bytes per second with an optional K, M or G suffix (default: none)")
	fs.StringVar(&b.maxDown, "max-download-rate", "", "cap download from peers, bytes per second (default: none)")
	fs.IntVar(&b.maxConns, "max-conns", d.MaxConns, "peer connections per package")
	fs.BoolVar(&b.titForTat, "tit-for-tat", d.TitForTat, "choke peers that do not upload to us (internet habit; off in a data center)")
	fs.BoolVar(&b.encrypt, "require-encryption", d.RequireEncryption, "only talk to peers over encrypted connections")
	fs.BoolVar(&b.noFastPath, "no-fast-path", d.NoFastPath, "move pieces between pkgsync nodes over BitTorrent too, not over their own TCP service\n(whole pieces with sendfile; off anyway with --require-encryption or --tit-for-tat)")
	fs.BoolVar(&b.dht, "dht", d.DHT, "use the DHT to find peers")
	fs.BoolVar(&b.pex, "pex", d.PEX, "exchange peers with peers (PEX)")
	fs.BoolVar(&b.lpd, "lpd", d.LPD, "local peer discovery (not supported by the BitTorrent library: refused)")
}

func (b *btFlags) config() (bt.Config, error) {
	c := bt.DefaultConfig()
	c.ListenAddr = b.listen
	c.TitForTat, c.RequireEncryption = b.titForTat, b.encrypt
	c.NoFastPath = b.noFastPath
	c.DHT, c.PEX, c.LPD = b.dht, b.pex, b.lpd
	c.MaxConns = b.maxConns
	var err error
	if c.MaxUploadRate, err = parseRate("--max-upload-rate", b.maxUp); err != nil {
		return c, err
	}
	if c.MaxDownloadRate, err = parseRate("--max-download-rate", b.maxDown); err != nil {
		return c, err
	}
	if b.topologyFn != "" {
		m, err := topology.Load(b.topologyFn)
		if err != nil {
			return c, err
		}
		c.Topology = m
	}
	return c, nil
}

// parseRate reads a rate in bytes per second: "1500000", "100K", "50M" or "1G" (binary units).
func parseRate(flag, s string) (int64, error) {
	if s == "" || s == "0" {
		return 0, nil
	}
	mult := int64(1)
	switch strings.ToUpper(s[len(s)-1:]) {
	case "K":
		mult = 1 << 10
	case "M":
		mult = 1 << 20
	case "G":
		mult = 1 << 30
	}
	if mult > 1 {
		s = s[:len(s)-1]
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n < 0 {
		return 0, fmt.Errorf("%w: %s %q: want bytes per second, e.g. 50M", errUsage, flag, s)
	}
	return n * mult, nil
}
