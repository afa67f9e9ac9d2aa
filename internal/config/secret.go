package config

import "log/slog"

// Secret holds a credential. Every way of printing it (fmt verbs, slog, JSON)
// yields "[redacted]", so a secret that slips into a log line or an error
// still does not leak; only Reveal returns the value, at the point of use.
type Secret string

const redacted = "[redacted]"

// Reveal returns the secret's value. Call it only where the value is handed to
// the system that needs it.
func (s Secret) Reveal() string { return string(s) }

// IsSet reports whether the secret has a value.
func (s Secret) IsSet() bool { return s != "" }

// String implements fmt.Stringer.
func (s Secret) String() string {
	if s == "" {
		return ""
	}
	return redacted
}

// GoString implements fmt.GoStringer so %#v redacts too.
func (s Secret) GoString() string { return s.String() }

// LogValue implements slog.LogValuer.
func (s Secret) LogValue() slog.Value { return slog.StringValue(s.String()) }

// MarshalText implements encoding.TextMarshaler (JSON, YAML output).
func (s Secret) MarshalText() ([]byte, error) { return []byte(s.String()), nil }
