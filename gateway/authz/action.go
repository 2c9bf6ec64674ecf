package authz

import (
	"fmt"
	"strings"
)

// Action is one of the MQTT actions edgegw enforces.
type Action uint8

// The enforced actions. Their resources are client/ID (Connect), topic/NAME (Publish,
// Receive, RetainPublish), topicfilter/FILTER (Subscribe) and thing/THING or
// thing/THING/SHADOW (the Device Shadow actions, enforced when the gateway serves
// shadows).
const (
	Connect Action = iota
	Publish
	Subscribe
	Receive
	RetainPublish
	GetThingShadow
	UpdateThingShadow
	DeleteThingShadow
	numActions
)

var actionNames = [numActions]string{"iot:Connect", "iot:Publish", "iot:Subscribe", "iot:Receive", "iot:RetainPublish",
	"iot:GetThingShadow", "iot:UpdateThingShadow", "iot:DeleteThingShadow"}

// resourcePrefix is the resource type a request of each action names.
var resourcePrefix = [numActions]string{"client/", "topic/", "topicfilter/", "topic/", "topic/", "thing/", "thing/", "thing/"}

// String returns the policy name of the action, e.g. "iot:Publish".
func (a Action) String() string {
	if a < numActions {
		return actionNames[a]
	}
	return fmt.Sprintf("Action(%d)", uint8(a))
}

// Resource returns the policy resource a request of this action names, e.g.
// Publish.Resource("a/b") = "topic/a/b", Subscribe.Resource("a/#") = "topicfilter/a/#".
func (a Action) Resource(name string) string {
	if a < numActions {
		return resourcePrefix[a] + name
	}
	return name
}

// ParseAction accepts the policy name ("iot:Publish", case-insensitive) or the command
// line name: connect, publish, subscribe, receive, retain-publish, get-thing-shadow,
// update-thing-shadow, delete-thing-shadow.
func ParseAction(s string) (Action, error) {
	t := strings.ToLower(strings.TrimPrefix(strings.ToLower(s), "iot:"))
	t = strings.ReplaceAll(t, "-", "")
	for a := Action(0); a < numActions; a++ {
		if strings.EqualFold(t, actionNames[a][len("iot:"):]) {
			return a, nil
		}
	}
	return 0, fmt.Errorf("unknown action %q: want connect, publish, subscribe, receive, retain-publish, get-thing-shadow, update-thing-shadow or delete-thing-shadow", s)
}

// actionMask has bit 1<<a set for every Action a a statement covers.
type actionMask uint8

const allActions actionMask = 1<<numActions - 1

func (m actionMask) has(a Action) bool { return m&(1<<a) != 0 }

// otherIoTActions are real AWS IoT actions that appear in device policies but that
// edgegw does not enforce (shadows, jobs, retained-message APIs, fleet provisioning...).
// Statements naming them load fine; the actions are ignored with a note. Any other
// iot: name is a load error, so a typo (iot:Publsh) cannot silently grant nothing.
var otherIoTActions = []string{
	"ListNamedShadowsForThing",
	"GetRetainedMessage", "ListRetainedMessages", "DeleteConnection",
	"DescribeJobExecution", "GetPendingJobExecutions", "StartNextPendingJobExecution",
	"UpdateJobExecution", "DescribeJob", "CreateJob", "ListJobs",
	"AssumeRoleWithCertificate", "CreateKeysAndCertificate", "CreateCertificateFromCsr",
	"RegisterThing", "DescribeThing", "ListThings", "CreateThing", "UpdateThing", "DeleteThing",
	"DescribeEndpoint", "ListThingGroupsForThing", "AddThingToThingGroup",
	"GetPolicy", "ListPolicies", "AttachPolicy", "DetachPolicy", "AttachThingPrincipal",
	"DescribeCertificate", "UpdateCertificate", "ListCertificates",
	"GetIndexingConfiguration", "SearchIndex", "DescribeThingGroup", "ListThingPrincipals",
	"CreateDynamicThingGroup", "ListNamedShadows", "DescribeSecurityProfile",
}

// compileAction adds one Action element to mask. It returns a note when the action is
// valid but not enforced by edgegw, and an error message when it is invalid.
func compileAction(s string, mask *actionMask) (note, errMsg string) {
	if s == "*" {
		*mask |= allActions
		return "", ""
	}
	svc, name, ok := strings.Cut(s, ":")
	if !ok || svc == "" || name == "" {
		return "", fmt.Sprintf("bad action %q: want SERVICE:ACTION, e.g. iot:Publish", s)
	}
	lsvc := strings.ToLower(svc)
	if !globMatchString(lsvc, "iot") {
		if !validServiceName(lsvc) {
			return "", fmt.Sprintf("bad action %q: service %q is not a valid name", s, svc)
		}
		return fmt.Sprintf("action %q is not an AWS IoT action; edgegw ignores it", s), ""
	}
	lname := strings.ToLower(name)
	if strings.ContainsAny(name, "*?") {
		var m actionMask
		for a := Action(0); a < numActions; a++ {
			if globMatchString(lname, strings.ToLower(actionNames[a][4:])) {
				m |= 1 << a
			}
		}
		*mask |= m
		if m == 0 {
			return fmt.Sprintf("action %q matches no action edgegw enforces; edgegw ignores it", s), ""
		}
		return "", ""
	}
	for a := Action(0); a < numActions; a++ {
		if lname == strings.ToLower(actionNames[a][4:]) {
			*mask |= 1 << a
			return "", ""
		}
	}
	for _, o := range otherIoTActions {
		if strings.EqualFold(o, name) {
			return fmt.Sprintf("action %q is not enforced by edgegw; it is ignored", s), ""
		}
	}
	msg := fmt.Sprintf("unknown action %q", s)
	if g := suggestAction(lname); g != "" {
		msg += fmt.Sprintf(" (did you mean %s?)", g)
	}
	return "", msg
}

func validServiceName(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || c == '*' || c == '?') {
			return false
		}
	}
	return s != ""
}

// suggestAction returns the enforced action closest to a misspelled name, if close.
func suggestAction(lname string) string {
	best, bestD := "", 3
	for a := Action(0); a < numActions; a++ {
		if d := editDistance(lname, strings.ToLower(actionNames[a][4:])); d < bestD {
			best, bestD = actionNames[a], d
		}
	}
	return best
}

func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			c := prev[j-1]
			if a[i-1] != b[j-1] {
				c++
			}
			cur[j] = min(c, prev[j]+1, cur[j-1]+1)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}
