package wsmansim

import (
	"bytes"
	"encoding/xml"
	"fmt"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/google/uuid"
)

// Namespaces and URIs of the Windows Remote Shell protocol (MS-WSMV).
const (
	nsSOAP  = "http://www.w3.org/2003/05/soap-envelope"
	nsAddr  = "http://schemas.xmlsoap.org/ws/2004/08/addressing"
	nsWSMan = "http://schemas.dmtf.org/wbem/wsman/1/wsman.xsd"
	nsShell = "http://schemas.microsoft.com/wbem/wsman/1/windows/shell"

	resourceCmd = "http://schemas.microsoft.com/wbem/wsman/1/windows/shell/cmd"

	actionCreate  = "http://schemas.xmlsoap.org/ws/2004/09/transfer/Create"
	actionDelete  = "http://schemas.xmlsoap.org/ws/2004/09/transfer/Delete"
	actionCommand = "http://schemas.microsoft.com/wbem/wsman/1/windows/shell/Command"
	actionSend    = "http://schemas.microsoft.com/wbem/wsman/1/windows/shell/Send"
	actionReceive = "http://schemas.microsoft.com/wbem/wsman/1/windows/shell/Receive"
	actionSignal  = "http://schemas.microsoft.com/wbem/wsman/1/windows/shell/Signal"

	actionFault     = "http://schemas.dmtf.org/wbem/wsman/1/wsman/fault"
	actionAddrFault = "http://schemas.xmlsoap.org/ws/2004/08/addressing/fault"

	stateRunning = "http://schemas.microsoft.com/wbem/wsman/1/windows/shell/CommandState/Running"
	stateDone    = "http://schemas.microsoft.com/wbem/wsman/1/windows/shell/CommandState/Done"

	signalTerminate = "http://schemas.microsoft.com/wbem/wsman/1/windows/shell/signal/terminate"
	signalCtrlC     = "http://schemas.microsoft.com/wbem/wsman/1/windows/shell/signal/ctrl_c"
)

// request is the part of a WS-Man request envelope the simulator reads.
type request struct {
	XMLName xml.Name `xml:"http://www.w3.org/2003/05/soap-envelope Envelope"`
	Header  struct {
		Action           string `xml:"http://schemas.xmlsoap.org/ws/2004/08/addressing Action"`
		MessageID        string `xml:"http://schemas.xmlsoap.org/ws/2004/08/addressing MessageID"`
		ResourceURI      string `xml:"http://schemas.dmtf.org/wbem/wsman/1/wsman.xsd ResourceURI"`
		MaxEnvelopeSize  string `xml:"http://schemas.dmtf.org/wbem/wsman/1/wsman.xsd MaxEnvelopeSize"`
		OperationTimeout string `xml:"http://schemas.dmtf.org/wbem/wsman/1/wsman.xsd OperationTimeout"`
		Selectors        []struct {
			Name  string `xml:"Name,attr"`
			Value string `xml:",chardata"`
		} `xml:"http://schemas.dmtf.org/wbem/wsman/1/wsman.xsd SelectorSet>Selector"`
		Options []struct {
			Name  string `xml:"Name,attr"`
			Value string `xml:",chardata"`
		} `xml:"http://schemas.dmtf.org/wbem/wsman/1/wsman.xsd OptionSet>Option"`
	} `xml:"http://www.w3.org/2003/05/soap-envelope Header"`
	Body struct {
		Shell       *struct{} `xml:"http://schemas.microsoft.com/wbem/wsman/1/windows/shell Shell"`
		CommandLine *struct {
			Command   string   `xml:"http://schemas.microsoft.com/wbem/wsman/1/windows/shell Command"`
			Arguments []string `xml:"http://schemas.microsoft.com/wbem/wsman/1/windows/shell Arguments"`
		} `xml:"http://schemas.microsoft.com/wbem/wsman/1/windows/shell CommandLine"`
		Send *struct {
			Streams []struct {
				Name      string `xml:"Name,attr"`
				CommandID string `xml:"CommandId,attr"`
				End       string `xml:"End,attr"`
				Data      string `xml:",chardata"`
			} `xml:"http://schemas.microsoft.com/wbem/wsman/1/windows/shell Stream"`
		} `xml:"http://schemas.microsoft.com/wbem/wsman/1/windows/shell Send"`
		Receive *struct {
			DesiredStream struct {
				CommandID string `xml:"CommandId,attr"`
				Streams   string `xml:",chardata"`
			} `xml:"http://schemas.microsoft.com/wbem/wsman/1/windows/shell DesiredStream"`
		} `xml:"http://schemas.microsoft.com/wbem/wsman/1/windows/shell Receive"`
		Signal *struct {
			CommandID string `xml:"CommandId,attr"`
			Code      string `xml:"http://schemas.microsoft.com/wbem/wsman/1/windows/shell Code"`
		} `xml:"http://schemas.microsoft.com/wbem/wsman/1/windows/shell Signal"`
	} `xml:"http://www.w3.org/2003/05/soap-envelope Body"`
}

func parseRequest(body []byte) (*request, error) {
	var req request
	if err := xml.NewDecoder(bytes.NewReader(body)).Decode(&req); err != nil {
		return nil, err
	}
	return &req, nil
}

// selector returns the value of a w:Selector, e.g. ShellId.
func (r *request) selector(name string) string {
	for _, s := range r.Header.Selectors {
		if s.Name == name {
			return strings.TrimSpace(s.Value)
		}
	}
	return ""
}

// option returns the value of a w:Option, e.g. WINRS_CONSOLEMODE_STDIN, and
// whether the request holds it.
func (r *request) option(name string) (string, bool) {
	for _, o := range r.Header.Options {
		if o.Name == name {
			return strings.TrimSpace(o.Value), true
		}
	}
	return "", false
}

// iso8601Seconds matches the durations WS-Man clients send: PT60S, PT60.000S.
var iso8601Seconds = regexp.MustCompile(`^PT(?:(\d+)H)?(?:(\d+)M)?(?:(\d+(?:\.\d+)?)S)?$`)

// parseOperationTimeout reads an xs:duration of hours, minutes and seconds.
func parseOperationTimeout(s string) (time.Duration, bool) {
	m := iso8601Seconds.FindStringSubmatch(strings.TrimSpace(s))
	if m == nil || (m[1] == "" && m[2] == "" && m[3] == "") {
		return 0, false
	}
	var d time.Duration
	if m[1] != "" {
		h, _ := strconv.Atoi(m[1])
		d += time.Duration(h) * time.Hour
	}
	if m[2] != "" {
		mi, _ := strconv.Atoi(m[2])
		d += time.Duration(mi) * time.Minute
	}
	if m[3] != "" {
		sec, _ := strconv.ParseFloat(m[3], 64)
		d += time.Duration(sec * float64(time.Second))
	}
	return d, true
}

func esc(s string) string {
	var b strings.Builder
	_ = xml.EscapeText(&b, []byte(s))
	return b.String()
}

// writeEnvelope answers like http.sys/WinRM: SOAP 1.2, UTF-8, the usual
// prefixes, RelatesTo echoing the request's MessageID.
func writeEnvelope(w http.ResponseWriter, status int, action, relatesTo, body string) {
	var b strings.Builder
	b.WriteString(`<s:Envelope xml:lang="en-US" xmlns:s="` + nsSOAP + `" xmlns:a="` + nsAddr +
		`" xmlns:x="http://schemas.xmlsoap.org/ws/2004/09/transfer" xmlns:w="` + nsWSMan +
		`" xmlns:rsp="` + nsShell + `" xmlns:p="http://schemas.microsoft.com/wbem/wsman/1/wsman.xsd">`)
	b.WriteString(`<s:Header><a:Action>` + esc(action) + `</a:Action>`)
	b.WriteString(`<a:MessageID>uuid:` + strings.ToUpper(uuid.NewString()) + `</a:MessageID>`)
	b.WriteString(`<a:To>http://schemas.xmlsoap.org/ws/2004/08/addressing/role/anonymous</a:To>`)
	if relatesTo != "" {
		b.WriteString(`<a:RelatesTo>` + esc(relatesTo) + `</a:RelatesTo>`)
	}
	b.WriteString(`</s:Header><s:Body>` + body + `</s:Body></s:Envelope>`)
	w.Header().Set("Content-Type", "application/soap+xml;charset=UTF-8")
	w.Header().Set("Content-Length", strconv.Itoa(b.Len()))
	w.WriteHeader(status)
	_, _ = w.Write([]byte(b.String()))
}

// fault is a WS-Management fault as Windows sends it (HTTP 500).
type fault struct {
	action    string // wsman/fault unless an addressing fault
	code      string // s:Sender or s:Receiver
	subcode   string // e.g. w:InvalidSelectors
	wsmanCode uint32 // WSManFault Code attribute
	message   string
}

func writeFault(w http.ResponseWriter, machine, relatesTo string, f fault) {
	action := f.action
	if action == "" {
		action = actionFault
	}
	body := fmt.Sprintf(`<s:Fault><s:Code><s:Value>%s</s:Value><s:Subcode><s:Value>%s</s:Value></s:Subcode></s:Code>`+
		`<s:Reason><s:Text xml:lang="en-US">%s</s:Text></s:Reason>`+
		`<s:Detail><f:WSManFault xmlns:f="http://schemas.microsoft.com/wbem/wsman/1/wsmanfault" Code="%d" Machine="%s">`+
		`<f:Message>%s</f:Message></f:WSManFault></s:Detail></s:Fault>`,
		esc(f.code), esc(f.subcode), esc(f.message), f.wsmanCode, esc(machine), esc(f.message))
	writeEnvelope(w, http.StatusInternalServerError, action, relatesTo, body)
}

// The faults the simulator answers, with Windows' codes and texts.
func faultActionNotSupported(action string) fault {
	return fault{
		action: actionAddrFault, code: "s:Sender", subcode: "a:ActionNotSupported", wsmanCode: 2150858753,
		message: "The WS-Management service cannot process the request. The WS-Addressing action URI " +
			action + " is invalid. Check the documentation for information on how to construct an action URI.",
	}
}

func faultResourceNotFound(uri string) fault {
	return fault{
		code: "s:Sender", subcode: "w:DestinationUnreachable", wsmanCode: 2150858752,
		message: "The WS-Management service cannot process the request. The resource URI (" + uri +
			") was not found in the WS-Management catalog.",
	}
}

func faultShellNotFound(id string) fault {
	return fault{
		code: "s:Sender", subcode: "w:InvalidSelectors", wsmanCode: 2150858843,
		message: "The request for the Windows Remote Shell with ShellId " + id + " failed because the shell was " +
			"not found on the server. Possible causes are: the specified ShellId is incorrect or the shell no " +
			"longer exists on the server. Provide the correct ShellId or create a new shell and retry the operation.",
	}
}

func faultInvalidParameter() fault {
	return fault{code: "s:Sender", subcode: "w:InvalidParameter", wsmanCode: 87, message: "The parameter is incorrect."}
}

func faultTimedOut() fault {
	return fault{
		code: "s:Receiver", subcode: "w:TimedOut", wsmanCode: 2150858793,
		message: "The WS-Management service cannot complete the operation within the time specified in OperationTimeout.",
	}
}

func faultAborted() fault {
	return fault{
		code: "s:Receiver", subcode: "w:InternalError", wsmanCode: 995,
		message: "The I/O operation has been aborted because of either a thread exit or an application request.",
	}
}

func faultQuota(max int) fault {
	return fault{
		code: "s:Receiver", subcode: "w:QuotaLimit", wsmanCode: 2150859173,
		message: fmt.Sprintf("The WS-Management service cannot process the request. This user is allowed a maximum "+
			"number of %d concurrent shells, which has been exceeded. Close existing shells or raise the quota for "+
			"this user.", max),
	}
}

func faultTooLarge(max int) fault {
	return fault{
		code: "s:Sender", subcode: "w:EncodingLimit", wsmanCode: 2150858790,
		message: fmt.Sprintf("The WS-Management service cannot process the request because the request envelope "+
			"is larger than the maximum envelope size (%d bytes). Send smaller requests or raise MaxEnvelopeSizekb.", max),
	}
}

func faultBadRequest() fault {
	return fault{
		code: "s:Sender", subcode: "w:SchemaValidationError", wsmanCode: 2150858791,
		message: "The WS-Management service cannot process the request because the request packet does not have a valid SOAP body.",
	}
}
