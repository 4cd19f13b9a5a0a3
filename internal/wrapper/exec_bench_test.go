package wrapper

import (
	"syscall"
	"testing"
	"time"
)

// BenchmarkExecTrue runs `true` from 16 goroutines at once, as the local
// runner does in the 1,000-target benchmark, and reports the CPU time of
// this process and its children per run besides the wall time.
func BenchmarkExecTrue(b *testing.B) {
	for _, kill := range []bool{false, true} {
		name := map[bool]string{false: "plain", true: "KillWithParent"}[kill]
		b.Run(name, func(b *testing.B) {
			cpu := cpuTime(b)
			b.SetParallelism(8) // × GOMAXPROCS 2
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					out, err := Exec(b.Context(), Options{KillWithParent: kill}, []string{"true"})
					if err != nil || out.ExitCode != 0 {
						b.Errorf("exec true: %v, %+v", err, out)
						return
					}
				}
			})
			b.ReportMetric(float64(cpuTime(b)-cpu)/float64(b.N), "cpu-ns/op")
		})
	}
}

func cpuTime(b *testing.B) time.Duration {
	var d time.Duration
	for _, who := range []int{syscall.RUSAGE_SELF, syscall.RUSAGE_CHILDREN} {
		var ru syscall.Rusage
		if err := syscall.Getrusage(who, &ru); err != nil {
			b.Fatal(err)
		}
		d += time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
	}
	return d
}
