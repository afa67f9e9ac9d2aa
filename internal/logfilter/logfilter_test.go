package logfilter_test

import (
	"bytes"
	"log/slog"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/autopatch/autopatch/internal/logfilter"
)

func TestRiverChatterAtDebug(t *testing.T) {
	t.Parallel()

	for _, tt := range []struct {
		name   string
		level  slog.Level
		wanted []string
	}{
		{"Info", slog.LevelInfo, []string{"River client started", "job rescued"}},
		{"Debug", slog.LevelDebug, []string{"River client started", "producer: Producer job counts", "maintenance.JobScheduler: Ran successfully", "job rescued"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var buf bytes.Buffer
			base := slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: tt.level, ReplaceAttr: func(_ []string, a slog.Attr) slog.Attr {
				if a.Key == slog.TimeKey {
					return slog.Attr{}
				}
				return a
			}})
			logger := slog.New(logfilter.River(base)).With("component", "river")
			logger.Info("River client started")
			logger.Info("producer: Producer job counts", "queue", "default")
			logger.Info("maintenance.JobScheduler: Ran successfully", "num_jobs_scheduled", 1)
			logger.Warn("job rescued")
			var got []string
			for _, line := range bytes.Split(bytes.TrimSpace(buf.Bytes()), []byte("\n")) {
				rec := map[string]string{}
				for _, f := range bytes.Fields(line) {
					k, v, _ := bytes.Cut(f, []byte("="))
					rec[string(k)] = string(v)
				}
				require.Equal(t, "river", rec["component"])
				_, msg, _ := bytes.Cut(line, []byte("msg="))
				m := string(msg)
				if i := bytes.Index(msg, []byte(" component=")); i >= 0 {
					m = string(msg[:i])
				}
				if m[0] == '"' {
					m = m[1 : len(m)-1]
				}
				got = append(got, m)
			}
			require.Equal(t, tt.wanted, got)
		})
	}
}
