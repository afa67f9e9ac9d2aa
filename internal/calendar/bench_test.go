package calendar

import (
	"testing"
	"time"
)

// BenchmarkWindows1000x12Months: the windows of 1,000 schedules over 12 months
// (issue #3: target < 20 ms per op).
func BenchmarkWindows1000x12Months(b *testing.B) {
	ss := genSchedules(b, 42, 1000)
	from := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	to := from.AddDate(1, 0, 0)
	b.ReportAllocs()
	var n int
	for b.Loop() {
		n = 0
		for _, s := range ss {
			n += len(s.Windows(from, to))
		}
	}
	b.ReportMetric(float64(n), "windows/op")
}

// BenchmarkPlan1000: the plan of a change with 1,000 schedules in scope (issue #3:
// target < 20 ms per op).
func BenchmarkPlan1000(b *testing.B) {
	ss := genSchedules(b, 42, 1000)
	start := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
	end := time.Date(2027, 1, 5, 0, 0, 0, 0, time.UTC)
	b.ReportAllocs()
	var res PlanResult
	for b.Loop() {
		res = Plan(ss, start, end)
	}
	b.ReportMetric(float64(len(res.Windows)), "placed/op")
}

// BenchmarkParse1000 reads a file of 1,000 schedules, as serve does at start.
func BenchmarkParse1000(b *testing.B) {
	data := []byte(genSchedulesYAML(42, 1000))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Parse(data); err != nil {
			b.Fatal(err)
		}
	}
}
