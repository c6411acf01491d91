package swarmsim
import ("testing";"fmt")
func TestProf(t *testing.T) {
	r, _ := Run(Scenario{Name:"q", Nodes:1000, Size: 1<<30, NodeRate: 1.25e9, OriginRate: 1.25e9, Seed: 1, Racks: 50})
	fmt.Printf("A=%v eff=%v origin=%v events=%d\n", *r.A, *r.Efficiency, r.OriginBytesRatio, r.Events)
}
