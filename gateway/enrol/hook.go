package enrol

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os/exec"
)

// HookInput is what a pre-provisioning hook reads on stdin: the input of AWS IoT's
// pre-provisioning hook Lambda.
type HookInput struct {
	ClaimCertificateID string            `json:"claimCertificateId"`
	CertificateID      string            `json:"certificateId"`
	CertificatePem     string            `json:"certificatePem"`
	TemplateArn        string            `json:"templateArn"`
	ClientID           string            `json:"clientId"`
	Parameters         map[string]string `json:"parameters"`
}

// HookOutput is what it prints on stdout: the Lambda's output.
type HookOutput struct {
	AllowProvisioning  *bool             `json:"allowProvisioning"`
	ParameterOverrides map[string]string `json:"parameterOverrides"`
}

// templateArn names a template in hook input. There is no AWS account or region at the edge:
// "local" stands for both.
func templateArn(name string) string {
	return "arn:aws:iot:local:local:provisioningtemplate/" + name
}

// maxHookOutput bounds what a hook may print.
const maxHookOutput = 64 << 10

// runHook runs h with in on stdin. It returns the parameter overrides when the hook allows
// provisioning; a refusal is a *RejectError (AccessDenied), any failure of the hook too (fail
// closed), with the reason in err for the log.
func runHook(ctx context.Context, h *Hook, in HookInput) (map[string]string, error) {
	ctx, cancel := context.WithTimeout(ctx, h.Timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, h.Command[0], h.Command[1:]...)
	cmd.Stdin = bytes.NewReader(marshal(in))
	var out bytes.Buffer
	cmd.Stdout = &limitWriter{w: &out, n: maxHookOutput}
	cmd.Stderr = io.Discard
	cmd.WaitDelay = h.Timeout // a grandchild holding stdout open must not hang us
	denied := reject(403, CodeAccessDenied, "the pre-provisioning hook did not allow provisioning")
	if err := cmd.Run(); err != nil {
		if ctx.Err() != nil {
			return nil, fmt.Errorf("%w: pre-provisioning hook %s: timed out after %s", denied, h.Command[0], h.Timeout)
		}
		return nil, fmt.Errorf("%w: pre-provisioning hook %s: %v", denied, h.Command[0], err)
	}
	var res HookOutput
	dec := json.NewDecoder(&out)
	if err := dec.Decode(&res); err != nil {
		return nil, fmt.Errorf("%w: pre-provisioning hook %s printed no output JSON: %v", denied, h.Command[0], err)
	}
	if res.AllowProvisioning == nil || !*res.AllowProvisioning {
		return nil, fmt.Errorf("%w: pre-provisioning hook %s answered allowProvisioning false", denied, h.Command[0])
	}
	return res.ParameterOverrides, nil
}

// limitWriter keeps the first n bytes and fails after that.
type limitWriter struct {
	w io.Writer
	n int
}

func (l *limitWriter) Write(p []byte) (int, error) {
	if len(p) > l.n {
		return 0, errors.New("hook output too long")
	}
	l.n -= len(p)
	return l.w.Write(p)
}
