package rollout

import "encoding/json"

func jsonUnquote(s string, v *string) error { return json.Unmarshal([]byte(s), v) }
