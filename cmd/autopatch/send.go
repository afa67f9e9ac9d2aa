package main

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/autopatch/autopatch/handlers"
	"github.com/autopatch/autopatch/internal/config"
	"github.com/autopatch/autopatch/internal/estate"
)

const sendUsage = `Usage: autopatch send change NUMBER [flags]
       autopatch send schedule-request NUMBER --schedule NAME --device NAME:SERVICE:TIER... [flags]

Posts one webhook to autopatch the way the shipped ServiceNow script
(integrations/servicenow/AutopatchClient.js) does: the body of the contract,
X-Autopatch-Timestamp and X-Autopatch-Signature (HMAC-SHA256 of
"<timestamp>.<body>" with AUTOPATCH_WEBHOOK_SECRET), or HTTP Basic with
AUTOPATCH_WEBHOOK_USER and AUTOPATCH_WEBHOOK_PASSWORD. It prints autopatch's
answer and exits 0 on 200 or 202, 1 otherwise.

Use it to try autopatch against the simulated estate (make run), or to test
the secret and the network path of a real deployment the way ServiceNow
would reach it. A change is sent approved and scheduled unless --state and
--approval say otherwise (e.g. --state canceled to unwind it).

With --tenant NAME (a tenant of AUTOPATCH_TENANTS_FILE) it posts to
/t/NAME/webhooks/... signed with that tenant's webhook secret, read from
the tenants file's webhook_secret_env or _file as serve reads it.

NUMBER is the record's number (CHG…, RITM…). Its sys_id is --sys-id, or the
one the simulated estate gives a seeded record of that number (the seed's
change_requests and request_items), so against make run it can be left out.

Flags:
`

// runSend is `autopatch send`. It returns 0 when autopatch accepted the
// delivery (202) or already had it (200), 1 when it answered otherwise or
// could not be reached, 2 for bad usage.
func runSend(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	return runSendWith(ctx, args, stdout, stderr, os.Getenv)
}

// runSendWith is runSend reading the environment through getenv.
func runSendWith(ctx context.Context, args []string, stdout, stderr io.Writer, getenv func(string) string) int {
	fs := flag.NewFlagSet("send", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprint(stderr, sendUsage)
		fs.PrintDefaults()
	}
	url := fs.String("url", envOr(getenv, "AUTOPATCH_URL", "http://localhost:8080"), "autopatch's base `URL` (default $AUTOPATCH_URL or http://localhost:8080)")
	secretFile := fs.String("secret-file", getenv("AUTOPATCH_WEBHOOK_SECRET_FILE"), "read the HMAC secret from `FILE` (default $AUTOPATCH_WEBHOOK_SECRET_FILE; else $AUTOPATCH_WEBHOOK_SECRET)")
	sysID := fs.String("sys-id", "", "the record's sys_id, 32 hex digits (default: the simulated estate's for NUMBER)")
	eventID := fs.String("event-id", "", "event_id of the delivery (default: unique per run; repeat one to see a duplicate answered 200)")
	requestedFor := fs.String("requested-for", "jane.doe", "schedule-request: the requester's user name")
	var devices, groups, schedules multiFlag
	fs.Var(&devices, "device", "schedule-request: a device as `NAME:SERVICE:TIER` (tier backend, middle or frontend); repeatable")
	fs.Var(&groups, "update-group", "change: a software update `GROUP` (default \"2026-12 Servers\"); repeatable")
	fs.Var(&schedules, "schedule", "schedule-request: the schedule `NAME` asked for; change: a schedule in the change's scope, repeatable (default: every automatic and manual_reboot schedule)")
	start := fs.String("start", "", "change: planned start, `TIME` in ServiceNow's \"YYYY-MM-DD HH:MM:SS\" (UTC) or RFC 3339 (default: an hour ago)")
	end := fs.String("end", "", "change: planned end, `TIME` as --start (default: 14 days from now)")
	state := fs.String("state", "scheduled", "change: the change's state (scheduled, implement, canceled, …)")
	approval := fs.String("approval", "approved", "change: the change's approval (approved, requested, rejected, …)")
	dryRun := fs.Bool("dry-run", false, "print the request instead of sending it")
	timeout := fs.Duration("timeout", 30*time.Second, "`deadline` of the request")
	tenant := fs.String("tenant", "", "send as tenant `NAME` of AUTOPATCH_TENANTS_FILE: to /t/NAME/webhooks/..., signed with its webhook_secret (default: the AUTOPATCH_* tenant)")

	if len(args) > 0 && (args[0] == "-h" || args[0] == "--help" || args[0] == "help") {
		fs.Usage()
		return 0
	}
	if len(args) < 2 || strings.HasPrefix(args[1], "-") {
		fmt.Fprintln(stderr, "autopatch send: want a kind (change or schedule-request) and a record number")
		fs.Usage()
		return 2
	}
	kind, number := args[0], args[1]
	if err := fs.Parse(args[2:]); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "autopatch send: unexpected arguments: %v\n", fs.Args())
		return 2
	}
	id := *sysID
	if id == "" {
		id = estate.SysIDOf(number)
	}
	now := time.Now().UTC()
	if *eventID == "" {
		*eventID = fmt.Sprintf("autopatch-send:%s:%d", id, now.UnixNano())
	}

	var path string
	var body any
	switch kind {
	case "change":
		if len(devices) > 0 {
			fmt.Fprintln(stderr, "autopatch send change: --device is for schedule-request")
			return 2
		}
		if len(groups) == 0 {
			groups = multiFlag{"2026-12 Servers"}
		}
		if *start == "" {
			*start = now.Add(-time.Hour).Format(snowTime)
		}
		if *end == "" {
			*end = now.Add(14 * 24 * time.Hour).Format(snowTime)
		}
		patching := map[string]any{"software_update_groups": []string(groups)}
		if len(schedules) > 0 {
			patching["schedules"] = []string(schedules)
		}
		path = handlers.PathChangeWebhook
		body = map[string]any{
			"event_id": *eventID,
			"change": map[string]any{
				"number": number, "sys_id": id, "type": "normal", "state": *state, "approval": *approval,
				"start_date": *start, "end_date": *end, "short_description": "sent by autopatch send",
				"sys_updated_on": now.Format(snowTime),
			},
			"patching": patching,
		}
	case "schedule-request":
		if len(schedules) != 1 || len(devices) == 0 {
			fmt.Fprintln(stderr, "autopatch send schedule-request: one --schedule and at least one --device are required")
			return 2
		}
		var devs []map[string]string
		for _, d := range devices {
			parts := strings.Split(d, ":")
			if len(parts) != 3 {
				fmt.Fprintf(stderr, "autopatch send: --device %q: want NAME:SERVICE:TIER\n", d)
				return 2
			}
			devs = append(devs, map[string]string{"name": parts[0], "service": parts[1], "tier": parts[2]})
		}
		path = handlers.PathScheduleRequestWebhook
		body = map[string]any{
			"event_id":      *eventID,
			"request_item":  map[string]any{"number": number, "sys_id": id, "sys_updated_on": now.Format(snowTime)},
			"requested_for": *requestedFor,
			"schedule":      schedules[0],
			"devices":       devs,
		}
	default:
		fmt.Fprintf(stderr, "autopatch send: unknown kind %q (change or schedule-request)\n", kind)
		return 2
	}
	raw, err := json.Marshal(body)
	if err != nil {
		fmt.Fprintf(stderr, "autopatch send: %v\n", err)
		return 1
	}

	base := strings.TrimRight(*url, "/")
	secret := getenv("AUTOPATCH_WEBHOOK_SECRET")
	user, password := getenv("AUTOPATCH_WEBHOOK_USER"), getenv("AUTOPATCH_WEBHOOK_PASSWORD")
	if *tenant != "" {
		// The tenant's secret comes from the tenants file as serve reads
		// it (its _env or _file), never from the command line.
		cfg, err := config.Load(getenv, "")
		if err != nil {
			fmt.Fprintf(stderr, "autopatch send: %v\n", err)
			return 2
		}
		chosen, err := chooseTenant(cfg, *tenant, getenv)
		if err != nil {
			fmt.Fprintf(stderr, "autopatch send: %v\n", err)
			if isUsage(err) {
				return 2
			}
			return 1
		}
		if chosen.file != nil {
			base += "/t/" + chosen.name
			secret, user, password = chosen.file.WebhookSecret.Reveal(), "", ""
		}
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, base+path, bytes.NewReader(raw))
	if err != nil {
		fmt.Fprintf(stderr, "autopatch send: %v\n", err)
		return 2
	}
	req.Header.Set("Content-Type", "application/json")
	if *secretFile != "" {
		b, err := os.ReadFile(*secretFile)
		if err != nil {
			fmt.Fprintf(stderr, "autopatch send: %v\n", err)
			return 1
		}
		secret = strings.TrimRight(string(b), "\r\n")
	}
	if secret == "" && user == "" {
		fmt.Fprintln(stderr, "autopatch send: set AUTOPATCH_WEBHOOK_SECRET (or --secret-file), or AUTOPATCH_WEBHOOK_USER and AUTOPATCH_WEBHOOK_PASSWORD")
		return 2
	}
	if secret != "" {
		ts := strconv.FormatInt(now.Unix(), 10)
		req.Header.Set(handlers.HeaderTimestamp, ts)
		req.Header.Set(handlers.HeaderSignature, Signature([]byte(secret), ts, raw))
	}
	if user != "" {
		req.SetBasicAuth(user, password)
	}
	if *dryRun {
		fmt.Fprintf(stdout, "POST %s\n", req.URL)
		for _, h := range []string{"Content-Type", handlers.HeaderTimestamp, handlers.HeaderSignature} {
			if v := req.Header.Get(h); v != "" {
				fmt.Fprintf(stdout, "%s: %s\n", h, v)
			}
		}
		fmt.Fprintf(stdout, "\n%s\n", raw)
		return 0
	}

	client := &http.Client{Timeout: *timeout}
	resp, err := client.Do(req)
	if err != nil {
		fmt.Fprintf(stderr, "autopatch send: %v\n", err)
		return 1
	}
	defer resp.Body.Close()
	answer, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	fmt.Fprintf(stdout, "%s %s %s: HTTP %d %s\n", kind, number, id, resp.StatusCode, strings.TrimSpace(string(answer)))
	if resp.StatusCode != http.StatusOK && resp.StatusCode != http.StatusAccepted {
		return 1
	}
	return 0
}

// snowTime is ServiceNow's date-time layout, as GlideRecord.getValue returns it (UTC).
const snowTime = "2006-01-02 15:04:05"

// Signature is the X-Autopatch-Signature value of body sent at timestamp ts
// (unix seconds): "sha256=" and the base64 HMAC-SHA256 of "<ts>.<body>".
func Signature(secret []byte, ts string, body []byte) string {
	mac := hmac.New(sha256.New, secret)
	mac.Write([]byte(ts + "."))
	mac.Write(body)
	return "sha256=" + base64.StdEncoding.EncodeToString(mac.Sum(nil))
}

// multiFlag is a repeatable string flag.
type multiFlag []string

func (m *multiFlag) String() string     { return strings.Join(*m, ",") }
func (m *multiFlag) Set(v string) error { *m = append(*m, v); return nil }

func envOr(getenv func(string) string, key, def string) string {
	if v := getenv(key); v != "" {
		return v
	}
	return def
}
