package servicenow

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"os"
	"regexp"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestReadmeSignatureScheme checks that what integrations/servicenow/README.md
// tells an administrator (its test vector, the openssl one-liner, the
// Scripts - Background check) and what AutopatchClient.js does are the
// webhook signature of docs/architecture.md §4.3: base64(HMAC-SHA256(secret,
// "<timestamp>.<raw body>")) after "sha256=". The vector was computed with
// openssl when the README was written; here Go's crypto recomputes it.
func TestReadmeSignatureScheme(t *testing.T) {
	t.Parallel()
	readme, err := os.ReadFile("../../integrations/servicenow/README.md")
	require.NoError(t, err)
	doc := string(readme)

	_, after, found := strings.Cut(doc, "<!-- signature-test-vector -->")
	require.True(t, found, "README has the test vector marker")
	block := regexp.MustCompile("(?s)```text\n(.*?)```").FindStringSubmatch(after)
	require.NotNil(t, block, "a text block follows the marker")
	vector := map[string]string{}
	for _, line := range strings.Split(block[1], "\n") {
		if key, value, ok := strings.Cut(line, ":"); ok {
			vector[key] = strings.TrimLeft(value, " ")
		}
	}
	for _, key := range []string{"secret", "secret_b64", "timestamp", "body", "signature"} {
		require.NotEmpty(t, vector[key], key)
	}

	// The base64 form an administrator stores for generateMac.
	require.Equal(t, base64.StdEncoding.EncodeToString([]byte(vector["secret"])), vector["secret_b64"])
	// The signature itself.
	mac := hmac.New(sha256.New, []byte(vector["secret"]))
	mac.Write([]byte(vector["timestamp"] + "." + vector["body"]))
	want := "sha256=" + base64.StdEncoding.EncodeToString(mac.Sum(nil))
	require.Equal(t, want, vector["signature"])

	// The Scripts - Background check signs the same data and expects it.
	require.Contains(t, doc, "'"+vector["timestamp"]+"."+vector["body"]+"'")
	require.Contains(t, doc, "GlideStringUtil.base64Encode('"+vector["secret"]+"')")
	require.Contains(t, doc, "must print "+strings.TrimPrefix(want, "sha256="))

	// The curl example signs "<ts>.<body>" with the raw secret and sends
	// the body unchanged.
	for _, line := range []string{
		`SIG=$(printf '%s.%s' "$TS" "$BODY" | openssl dgst -sha256 -hmac "$SECRET" -binary | base64)`,
		`-H "X-Autopatch-Timestamp: $TS"`,
		`-H "X-Autopatch-Signature: sha256=$SIG"`,
		`--data-binary "$BODY"`,
		`TS=$(date +%s)`,
	} {
		require.Contains(t, doc, line)
	}

	// The Script Include signs the same string with the base64 key.
	js, err := os.ReadFile("../../integrations/servicenow/AutopatchClient.js")
	require.NoError(t, err)
	for _, fragment := range []string{
		`generateMac(this.secretBase64, 'HmacSHA256', timestamp + '.' + json)`,
		`return 'sha256=' + String(mac);`,
		`rm.setRequestHeader('X-Autopatch-Timestamp', timestamp);`,
		`rm.setRequestHeader('X-Autopatch-Signature', this.sign(timestamp, json));`,
		`rm.setRequestBody(json);`,
		`Math.floor(new GlideDateTime().getNumericValue() / 1000)`,
	} {
		require.Contains(t, string(js), fragment)
	}
}
