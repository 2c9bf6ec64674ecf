package enrol

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
)

// Request topics of AWS IoT's device provisioning MQTT API, JSON payload format (each has a
// /cbor twin carrying the same documents in CBOR), and the suffixes of their responses.
const (
	TopicCreateFromCSR = "$aws/certificates/create-from-csr/json"
	TopicCreateKeys    = "$aws/certificates/create/json"
	provisionPrefix    = "$aws/provisioning-templates/"
	provisionSuffix    = "/provision/json"
	SuffixAccepted     = "/accepted"
	SuffixRejected     = "/rejected"
)

// Filters are the MQTT topic filters of every request the Service answers. The broker
// intercepts a PUBLISH whose topic matches one of them (after the publish policy allowed it)
// and hands it to Handle instead of routing it.
var Filters = []string{
	TopicCreateFromCSR, TopicCreateKeys, provisionPrefix + "+" + provisionSuffix,
	CBOR(TopicCreateFromCSR), CBOR(TopicCreateKeys), CBOR(provisionPrefix + "+" + provisionSuffix),
}

// CBOR returns the /cbor twin of a /json request topic.
func CBOR(topic string) string { return strings.TrimSuffix(topic, "/json") + "/cbor" }

// ProvisionTopic is the RegisterThing request topic of template (JSON).
func ProvisionTopic(template string) string { return provisionPrefix + template + provisionSuffix }

// asJSON returns the /json request topic for a /json or /cbor request topic, and whether it
// was /cbor.
func asJSON(topic string) (string, bool) {
	if base, ok := strings.CutSuffix(topic, "/cbor"); ok {
		return base + "/json", true
	}
	return topic, false
}

// templateOf returns the template name of a RegisterThing topic (/json).
func templateOf(topic string) (string, bool) {
	rest, ok := strings.CutPrefix(topic, provisionPrefix)
	if !ok {
		return "", false
	}
	name, ok := strings.CutSuffix(rest, provisionSuffix)
	if !ok || name == "" || strings.ContainsAny(name, "/+#") {
		return "", false
	}
	return name, true
}

// Handles reports whether topic is a request topic the Service answers (/json or /cbor).
func Handles(topic string) bool {
	topic, _ = asJSON(topic)
	if topic == TopicCreateFromCSR || topic == TopicCreateKeys {
		return true
	}
	_, ok := templateOf(topic)
	return ok
}

// CreateCertificateFromCSRRequest is the request payload of CreateCertificateFromCsr.
type CreateCertificateFromCSRRequest struct {
	CertificateSigningRequest string `json:"certificateSigningRequest"`
}

// CreateCertificateFromCSRResponse is its accepted payload.
type CreateCertificateFromCSRResponse struct {
	CertificateID             string `json:"certificateId"`
	CertificatePem            string `json:"certificatePem"`
	CertificateOwnershipToken string `json:"certificateOwnershipToken"`
}

// RegisterThingRequest is the request payload of RegisterThing.
type RegisterThingRequest struct {
	CertificateOwnershipToken string            `json:"certificateOwnershipToken"`
	Parameters                map[string]string `json:"parameters,omitempty"`
}

// RegisterThingResponse is its accepted payload.
type RegisterThingResponse struct {
	DeviceConfiguration map[string]string `json:"deviceConfiguration"`
	ThingName           string            `json:"thingName"`
}

// ErrorResponse is the payload of every /rejected response.
type ErrorResponse struct {
	StatusCode   int    `json:"statusCode"`
	ErrorCode    string `json:"errorCode"`
	ErrorMessage string `json:"errorMessage"`
}

// Error codes of /rejected responses (statusCode in brackets):
const (
	CodeInvalidPayload    = "InvalidPayload"                   // (400) not the request's JSON
	CodeInvalidCSR        = "InvalidCSR"                       // (400) the CSR is refused; errorMessage says why
	CodeInvalidParameters = "InvalidParameters"                // (400) unknown, missing or malformed parameter, or a thing name that is not the certificate's CN
	CodeInvalidToken      = "InvalidCertificateOwnershipToken" // (400) unknown, used, expired, or another connection's token
	CodeNotSupported      = "NotSupported"                     // (400) CreateKeysAndCertificate: keys are never made for a device here
	CodeAccessDenied      = "AccessDenied"                     // (403) the pre-provisioning hook refused, or the caller may not do this
	CodeNotFound          = "ResourceNotFound"                 // (404) no such provisioning template
	CodeConflict          = "ResourceConflict"                 // (409) the thing already has an active certificate
	CodeThrottled         = "Throttled"                        // (429) the certificate's rate limit is exhausted
	CodeInternal          = "InternalFailure"                  // (500) the CA could not sign or write; see the gateway's log
)

// RejectError is a refusal with its documented status and code.
type RejectError struct {
	Status  int
	Code    string
	Message string
}

func (e *RejectError) Error() string { return fmt.Sprintf("%s (%d): %s", e.Code, e.Status, e.Message) }

func reject(status int, code, format string, args ...any) *RejectError {
	return &RejectError{Status: status, Code: code, Message: fmt.Sprintf(format, args...)}
}

// maxPayload bounds a request payload: a 8192-bit RSA CSR in PEM is under 8 KiB.
const maxPayload = 64 << 10

// decode reads a request payload strictly: one JSON object, at most maxPayload bytes,
// nothing after it. Unknown fields are ignored, as AWS does.
func decode(payload []byte, v any) error {
	if len(payload) > maxPayload {
		return reject(400, CodeInvalidPayload, "payload of %d bytes is over the %d byte limit", len(payload), maxPayload)
	}
	dec := json.NewDecoder(bytes.NewReader(payload))
	if err := dec.Decode(v); err != nil {
		return reject(400, CodeInvalidPayload, "the payload is not the request's JSON object: %v", err)
	}
	if dec.More() {
		return reject(400, CodeInvalidPayload, "the payload has data after its JSON object")
	}
	return nil
}

// parseCreateFromCSR decodes a CreateCertificateFromCsr request.
func parseCreateFromCSR(payload []byte) (*CreateCertificateFromCSRRequest, error) {
	var r CreateCertificateFromCSRRequest
	if err := decode(payload, &r); err != nil {
		return nil, err
	}
	if r.CertificateSigningRequest == "" {
		return nil, reject(400, CodeInvalidPayload, "certificateSigningRequest is missing or empty: send the CSR in PEM")
	}
	return &r, nil
}

// parseRegisterThing decodes a RegisterThing request.
func parseRegisterThing(payload []byte) (*RegisterThingRequest, error) {
	var r RegisterThingRequest
	if err := decode(payload, &r); err != nil {
		return nil, err
	}
	if r.CertificateOwnershipToken == "" {
		return nil, reject(400, CodeInvalidPayload, "certificateOwnershipToken is missing or empty: send the token from CreateCertificateFromCsr's accepted response")
	}
	if len(r.Parameters) > 64 {
		return nil, reject(400, CodeInvalidParameters, "%d parameters: at most 64", len(r.Parameters))
	}
	return &r, nil
}

func marshal(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err) // plain structs and string maps only
	}
	return b
}

// rejectedResponse turns err into the /rejected response for request topic. An error that is
// no *RejectError is answered as InternalFailure without its text (the log has it).
func rejectedResponse(topic string, err error) (Response, *RejectError) {
	var re *RejectError
	if !errors.As(err, &re) {
		re = reject(500, CodeInternal, "the gateway could not complete the request; its log says why")
	}
	return Response{Topic: topic + SuffixRejected, Payload: marshal(ErrorResponse{StatusCode: re.Status, ErrorCode: re.Code, ErrorMessage: re.Message})}, re
}
