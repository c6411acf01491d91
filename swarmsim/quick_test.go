package swarmsim
import ("testing";"time";"fmt")
func TestQuick(t *testing.T) {
	for _, n := range []int{300} {
	st := time.Now()
	r, err := Run(Scenario{Name:"q", Nodes:n, Size: 1<<30, NodeRate: 1.25e9, OriginRate: 1.25e9, Seed: 1, Racks: 50})
	if err != nil { t.Fatal(err) }
	r.NodeTimes = nil
	fmt.Printf("%+v A=%v E=%v took %v\n", *r, *r.A, *r.Efficiency, time.Since(st))
	}
}
