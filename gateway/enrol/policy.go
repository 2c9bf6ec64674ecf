package enrol

import "encoding/json"

// ClaimPolicyName is the policy `edgegw pki claim` attaches to a claim certificate's registry
// entry; ClaimPolicy is its document.
const ClaimPolicyName = "edgegw-claim"

// RenewPolicyName is a policy to attach to devices that renew their own certificate over MQTT;
// RenewPolicy is its document.
const RenewPolicyName = "edgegw-renew"

type policyDoc struct {
	Version   string      `json:"Version"`
	Statement []statement `json:"Statement"`
}

type statement struct {
	Sid      string   `json:"Sid,omitempty"`
	Effect   string   `json:"Effect"`
	Action   []string `json:"Action"`
	Resource []string `json:"Resource"`
}

const arnPrefix = "arn:aws:iot:*:*:"

// provisioningTopics are the request and response topics of the API for templates, and the
// response filters a device may subscribe to: each response topic, and request + "/+" (one
// subscription for both answers; Receive still allows only the accepted and rejected topics).
func provisioningTopics(templates []string) (requests, responses, filters []string) {
	requests = []string{TopicCreateFromCSR, CBOR(TopicCreateFromCSR)}
	for _, t := range templates {
		requests = append(requests, ProvisionTopic(t), CBOR(ProvisionTopic(t)))
	}
	for _, r := range requests {
		responses = append(responses, r+SuffixAccepted, r+SuffixRejected)
		filters = append(filters, r+SuffixAccepted, r+SuffixRejected, r+"/+")
	}
	return requests, responses, filters
}

func prefixed(kind string, names []string) []string {
	out := make([]string, len(names))
	for i, n := range names {
		out[i] = arnPrefix + kind + "/" + n
	}
	return out
}

// ClaimPolicy is the least-privilege policy of a claim certificate, in AWS IoT policy grammar:
// connect with a client ID that is the claim's name or starts with it and "-" (claim-batch7-
// 0042: a leaked claim cannot take over a sensor's session), publish only the requests
// (CreateCertificateFromCsr and RegisterThing of templates), subscribe to and receive only
// their accepted/rejected responses, in JSON or CBOR. Nothing else: not
// CreateKeysAndCertificate, no other topic. The broker still delivers a response only to the
// connection that asked, so a claim shared by a batch never sees another device's token.
func ClaimPolicy(templates ...string) []byte {
	req, resp, filters := provisioningTopics(templates)
	cn := "${iot:Certificate.Subject.CommonName}"
	doc := policyDoc{Version: "2012-10-17", Statement: []statement{
		{Sid: "ConnectAsTheClaim", Effect: "Allow", Action: []string{"iot:Connect"}, Resource: prefixed("client", []string{cn, cn + "-*"})},
		{Sid: "PublishRequests", Effect: "Allow", Action: []string{"iot:Publish"}, Resource: prefixed("topic", req)},
		{Sid: "SubscribeResponses", Effect: "Allow", Action: []string{"iot:Subscribe"}, Resource: prefixed("topicfilter", filters)},
		{Sid: "ReceiveResponses", Effect: "Allow", Action: []string{"iot:Receive"}, Resource: prefixed("topic", resp)},
	}}
	b, _ := json.MarshalIndent(doc, "", "  ")
	return append(b, '\n')
}

// RenewPolicy lets a registered device renew its own certificate: publish
// CreateCertificateFromCsr (and RegisterThing of templates, which AWS IoT device SDKs call
// after it), subscribe to and receive the responses. Attach it beside the device's own policy;
// it grants nothing else (no Connect: the device's own policy decides that).
func RenewPolicy(templates ...string) []byte {
	req, resp, filters := provisioningTopics(templates)
	doc := policyDoc{Version: "2012-10-17", Statement: []statement{
		{Sid: "PublishRenewal", Effect: "Allow", Action: []string{"iot:Publish"}, Resource: prefixed("topic", req)},
		{Sid: "SubscribeResponses", Effect: "Allow", Action: []string{"iot:Subscribe"}, Resource: prefixed("topicfilter", filters)},
		{Sid: "ReceiveResponses", Effect: "Allow", Action: []string{"iot:Receive"}, Resource: prefixed("topic", resp)},
	}}
	b, _ := json.MarshalIndent(doc, "", "  ")
	return append(b, '\n')
}
