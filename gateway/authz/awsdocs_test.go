package authz

import (
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/hex"
	"testing"
)

// The policy documents of the AWS IoT Core Developer Guide's example pages, each
// loaded unchanged (only whitespace compacted) and each decision checked as the page
// describes it. The pages:
const (
	pageConnect     = "https://docs.aws.amazon.com/iot/latest/developerguide/connect-policy.html"
	pagePubSub      = "https://docs.aws.amazon.com/iot/latest/developerguide/pub-sub-policy.html"
	pageConnectPub  = "https://docs.aws.amazon.com/iot/latest/developerguide/connect-and-pub.html"
	pageThing       = "https://docs.aws.amazon.com/iot/latest/developerguide/thing-policy-examples.html"
	pageCertificate = "https://docs.aws.amazon.com/iot/latest/developerguide/certificate-policy-examples.html"
	pageRetained    = "https://docs.aws.amazon.com/iot/latest/developerguide/retained-message-policy-examples.html"
)

// The registry the examples run against: "registered devices" are things listed
// with the policy attached (the certificate's thing, as AWS's AttachThingPrincipal);
// "unregistered devices" have a certificate whose thing is not listed, so the
// default policies apply and no thing variable resolves (a policy attached to the
// certificate only, in AWS terms).
const awsRegistry = `version: 1
default: {policies: [example]}
things:
  - {name: thing1, type: Thing_Type_Name, attributes: {attributeName: attributeValue}, policies: [example]}
  - {name: thing2, type: other, attributes: {attributeName: other}, policies: [example]}
`

type awsCheck struct {
	who    string // a key of the identities table
	action Action
	res    string
	want   bool
}

// A policy value of an ARN: what every example's region and account are.
const arn = "arn:aws:iot:us-east-1:123456789012:"

func TestAWSDeveloperGuideExamples(t *testing.T) {
	certCN := newCert(t, pkix.Name{CommonName: "thing1"}, 7)
	cnOID := asn1.ObjectIdentifier{2, 5, 4, 3}
	// Three CN values: .2 is the third (AWS counts from 0 after the first).
	certAdmin := newCert(t, pkix.Name{ExtraNames: []pkix.AttributeTypeAndValue{
		{Type: cnOID, Value: "thing1"}, {Type: cnOID, Value: "Operator"}, {Type: cnOID, Value: "Administrator"}}}, 8)
	certAdminFirst := newCert(t, pkix.Name{ExtraNames: []pkix.AttributeTypeAndValue{
		{Type: cnOID, Value: "Administrator"}, {Type: cnOID, Value: "x"}, {Type: cnOID, Value: "y"}}}, 9)
	certID := func(c *x509.Certificate) string { s := sha256.Sum256(c.Raw); return hex.EncodeToString(s[:]) }

	ids := map[string]Identity{
		// A registered device: its certificate's thing, connecting with its thing name.
		"thing1": {ThingName: "thing1", ClientID: "thing1", Cert: certCN, TLS: true},
		"thing2": {ThingName: "thing2", ClientID: "thing2", Cert: certCN, TLS: true},
		// thing1's certificate, but a client ID that is not the thing name.
		"thing1 as client1": {ThingName: "thing1", ClientID: "client1", Cert: certCN, TLS: true},
		// Unregistered devices (certificate without a listed thing).
		"client1": {ThingName: "cert-only", ClientID: "client1", Cert: certCN, TLS: true},
		"client2": {ThingName: "cert-only", ClientID: "client2", Cert: certCN, TLS: true},
		"client3": {ThingName: "cert-only", ClientID: "client3", Cert: certCN, TLS: true},
		"client4": {ThingName: "cert-only", ClientID: "client4", Cert: certCN, TLS: true},
		"plus":    {ThingName: "cert-only", ClientID: "+", Cert: certCN, TLS: true},
		// CONNECT features: iot:ConnectAttributes and iot:LastWillTopic.
		"clean":              {ThingName: "cert-only", ClientID: "client1", CleanSession: true},
		"persistent":         {ThingName: "cert-only", ClientID: "client1"},
		"clean+will":         {ThingName: "cert-only", ClientID: "client1", CleanSession: true, HasWill: true, WillTopic: "my/lastwill/topicName"},
		"persistent+will":    {ThingName: "cert-only", ClientID: "client1", HasWill: true, WillTopic: "my/lastwill/topicName"},
		"clean+other will":   {ThingName: "cert-only", ClientID: "client1", CleanSession: true, HasWill: true, WillTopic: "other/topic"},
		"device1 clean+will": {ThingName: "cert-only", ClientID: "device1", CleanSession: true, HasWill: true, WillTopic: "will"},
		// Certificates with several subject common names.
		"admin thing1":    {ThingName: "thing1", ClientID: "thing1", Cert: certAdmin, TLS: true},
		"admin first":     {ThingName: "thing1", ClientID: "thing1", Cert: certAdminFirst, TLS: true},
		"admin client1":   {ThingName: "cert-only", ClientID: "client1", Cert: certAdmin, TLS: true},
		"no admin client": {ThingName: "cert-only", ClientID: "client1", Cert: certCN, TLS: true},
	}
	// The four CONNECT feature sets, for the persistent-session examples: which may connect.
	features := func(clean, persistent, will, both bool) []awsCheck {
		return []awsCheck{
			{"clean", Connect, "client1", clean},
			{"persistent", Connect, "client1", persistent},
			{"clean+will", Connect, "client1", will},
			{"persistent+will", Connect, "client1", both},
		}
	}
	tests := []struct {
		page, name, doc string
		checks          []awsCheck
	}{
		// ---- Connect policy examples ----
		{pageConnect, "client1 may connect", `{"Version": "2012-10-17", "Statement": [
			{"Effect": "Allow", "Action": ["iot:Connect"], "Resource": ["` + arn + `client/client1"]}]}`,
			[]awsCheck{{"client1", Connect, "client1", true}, {"client2", Connect, "client2", false}, {"thing1", Connect, "thing1", false}}},
		{pageConnect, "deny client1 and client2, allow the attached thing's name", `{"Version": "2012-10-17", "Statement": [
			{"Effect": "Deny", "Action": ["iot:Connect"], "Resource": ["` + arn + `client/client1", "` + arn + `client/client2"]},
			{"Effect": "Allow", "Action": ["iot:Connect"], "Resource": ["` + arn + `client/${iot:Connection.Thing.ThingName}"],
			 "Condition": {"Bool": {"iot:Connection.Thing.IsAttached": "true"}}}]}`,
			[]awsCheck{{"thing1", Connect, "thing1", true}, {"thing2", Connect, "thing2", true},
				{"thing1 as client1", Connect, "client1", false}, {"client1", Connect, "client1", false},
				{"client3", Connect, "client3", false}}},
		{pageConnect, "PersistentConnect allowed (ForAllValues)", `{"Version": "2012-10-17", "Statement": [
			{"Effect": "Allow", "Action": ["iot:Connect"], "Resource": "*",
			 "Condition": {"ForAllValues:StringEquals": {"iot:ConnectAttributes": ["PersistentConnect"]}}}]}`,
			features(true, true, false, false)},
		{pageConnect, "PersistentConnect disallowed, other features allowed", `{"Version": "2012-10-17", "Statement": [
			{"Effect": "Allow", "Action": ["iot:Connect"], "Resource": "*",
			 "Condition": {"ForAllValues:StringNotEquals": {"iot:ConnectAttributes": ["PersistentConnect"]}}}]}`,
			features(true, false, true, false)},
		{pageConnect, "the same with an Allow and a ForAnyValue Deny", `{"Version": "2012-10-17", "Statement": [
			{"Effect": "Allow", "Action": ["iot:Connect"], "Resource": "*"},
			{"Effect": "Deny", "Action": ["iot:Connect"], "Resource": "*",
			 "Condition": {"ForAnyValue:StringEquals": {"iot:ConnectAttributes": ["PersistentConnect"]}}}]}`,
			features(true, false, true, false)},
		{pageConnect, "PersistentConnect and LastWill allowed, nothing else", `{"Version": "2012-10-17", "Statement": [
			{"Effect": "Allow", "Action": ["iot:Connect"], "Resource": "*",
			 "Condition": {"ForAllValues:StringEquals": {"iot:ConnectAttributes": ["PersistentConnect", "LastWill"]}}}]}`,
			features(true, true, true, true)},
		{pageConnect, "clean connect with or without LastWill", `{"Version": "2012-10-17", "Statement": [
			{"Effect": "Allow", "Action": ["iot:Connect"], "Resource": "*",
			 "Condition": {"ForAllValues:StringEquals": {"iot:ConnectAttributes": ["LastWill"]}}}]}`,
			features(true, false, true, false)},
		{pageConnect, "default features only (an empty list)", `{"Version": "2012-10-17", "Statement": [
			{"Effect": "Allow", "Action": ["iot:Connect"], "Resource": "*",
			 "Condition": {"ForAllValues:StringEquals": {"iot:ConnectAttributes": []}}}]}`,
			features(true, false, false, false)},
		{pageConnect, "PersistentConnect required (ForAnyValue)", `{"Version": "2012-10-17", "Statement": [
			{"Effect": "Allow", "Action": ["iot:Connect"], "Resource": "*",
			 "Condition": {"ForAnyValue:StringEquals": {"iot:ConnectAttributes": ["PersistentConnect"]}}}]}`,
			features(false, true, false, true)},
		{pageConnect, "both PersistentConnect and LastWill required", `{"Version": "2012-10-17", "Statement": [
			{"Effect": "Allow", "Action": ["iot:Connect"], "Resource": "*",
			 "Condition": {"ForAllValues:StringEquals": {"iot:ConnectAttributes": ["PersistentConnect", "LastWill"]}}},
			{"Effect": "Deny", "Action": ["iot:Connect"], "Resource": "*",
			 "Condition": {"ForAllValues:StringEquals": {"iot:ConnectAttributes": ["PersistentConnect"]}}},
			{"Effect": "Deny", "Action": ["iot:Connect"], "Resource": "*",
			 "Condition": {"ForAllValues:StringEquals": {"iot:ConnectAttributes": ["LastWill"]}}},
			{"Effect": "Deny", "Action": ["iot:Connect"], "Resource": "*",
			 "Condition": {"ForAllValues:StringEquals": {"iot:ConnectAttributes": []}}}]}`,
			features(false, false, false, true)},
		{pageConnect, "no PersistentConnect, LastWill allowed", `{"Version": "2012-10-17", "Statement": [
			{"Effect": "Deny", "Action": ["iot:Connect"], "Resource": "*",
			 "Condition": {"ForAnyValue:StringEquals": {"iot:ConnectAttributes": ["PersistentConnect"]}}},
			{"Effect": "Allow", "Action": ["iot:Connect"], "Resource": "*",
			 "Condition": {"ForAllValues:StringEquals": {"iot:ConnectAttributes": ["LastWill"]}}}]}`,
			features(true, false, true, false)},
		{pageConnect, "a LastWill on one topic required", `{"Version": "2012-10-17", "Statement": [
			{"Effect": "Allow", "Action": ["iot:Connect"], "Resource": "*",
			 "Condition": {"ArnEquals": {"iot:LastWillTopic": "` + arn + `topic/my/lastwill/topicName"}}}]}`,
			[]awsCheck{{"clean+will", Connect, "client1", true}, {"persistent+will", Connect, "client1", true},
				{"clean+other will", Connect, "client1", false}, {"clean", Connect, "client1", false},
				{"persistent", Connect, "client1", false}}},
		{pageConnect, "the LastWill topic as the page writes it, region and account as placeholders", `{"Version": "2012-10-17", "Statement": [
			{"Effect": "Allow", "Action": ["iot:Connect"], "Resource": "*",
			 "Condition": {"ArnEquals": {"iot:LastWillTopic": "arn:aws:iot:*region*:*account-id*:topic/*my/lastwill/topicName*"}}}]}`,
			[]awsCheck{{"clean+will", Connect, "client1", true}, {"clean+other will", Connect, "client1", false},
				{"clean", Connect, "client1", false}}},
		{pageConnect, "clean connect with one LastWill topic", `{"Version": "2012-10-17", "Statement": [
			{"Effect": "Allow", "Action": ["iot:Connect"], "Resource": "*",
			 "Condition": {"ArnEquals": {"iot:LastWillTopic": "` + arn + `topic/my/lastwill/topicName"}}},
			{"Effect": "Deny", "Action": ["iot:Connect"], "Resource": "*",
			 "Condition": {"ForAnyValue:StringEquals": {"iot:ConnectAttributes": ["PersistentConnect"]}}}]}`,
			[]awsCheck{{"clean+will", Connect, "client1", true}, {"persistent+will", Connect, "client1", false},
				{"clean+other will", Connect, "client1", false}, {"clean", Connect, "client1", false}}},
		{pageConnect, "registered device: connect and subscribe to one filter", `{"Version": "2012-10-17", "Statement": [
			{"Effect": "Allow", "Action": ["iot:Connect"], "Resource": ["` + arn + `client/${iot:Connection.Thing.ThingName}"]},
			{"Effect": "Allow", "Action": ["iot:Subscribe"], "Resource": ["` + arn + `topicfilter/my/topic/filter"]}]}`,
			[]awsCheck{{"thing1", Connect, "thing1", true}, {"thing1 as client1", Connect, "client1", false},
				{"thing1", Subscribe, "my/topic/filter", true}, {"thing1", Subscribe, "my/topic/#", false},
				{"client1", Connect, "client1", false}}},
		{pageConnect, "unregistered device: connect as client1 and subscribe to my/topic", `{"Version": "2012-10-17", "Statement": [
			{"Effect": "Allow", "Action": ["iot:Connect"], "Resource": ["` + arn + `client/client1"]},
			{"Effect": "Allow", "Action": ["iot:Subscribe"], "Resource": ["` + arn + `topicfilter/my/topic"]}]}`,
			[]awsCheck{{"client1", Connect, "client1", true}, {"client2", Connect, "client2", false},
				{"client1", Subscribe, "my/topic", true}, {"client1", Subscribe, "my/#", false}}},

		// ---- Publish/Subscribe policy examples ----
		{pagePubSub, "registered: publish under the thing name", `{"Version": "2012-10-17", "Statement": [
			{"Effect": "Allow", "Action": ["iot:Connect"], "Resource": ["` + arn + `client/${iot:Connection.Thing.ThingName}"]},
			{"Effect": "Allow", "Action": ["iot:Publish"], "Resource": ["` + arn + `topic/${iot:Connection.Thing.ThingName}/*"]}]}`,
			[]awsCheck{{"thing1", Connect, "thing1", true}, {"thing1", Publish, "thing1/temp", true},
				{"thing1", Publish, "thing1/a/b", true}, {"thing1", Publish, "thing2/temp", false},
				{"thing1", Publish, "thing1", false}, {"thing1 as client1", Publish, "thing1/temp", false}}},
		{pagePubSub, "unregistered: client1-3 publish under their client ID", `{"Version": "2012-10-17", "Statement": [
			{"Effect": "Allow", "Action": ["iot:Connect"], "Resource": ["` + arn + `client/client1", "` + arn + `client/client2", "` + arn + `client/client3"]},
			{"Effect": "Allow", "Action": ["iot:Publish"], "Resource": ["` + arn + `topic/${iot:ClientId}/*"]}]}`,
			[]awsCheck{{"client1", Connect, "client1", true}, {"client3", Connect, "client3", true},
				{"client4", Connect, "client4", false}, {"client2", Publish, "client2/x", true},
				{"client2", Publish, "client1/x", false}}},
		{pagePubSub, "registered: subscribe and receive thing/room*", `{"Version": "2012-10-17", "Statement": [
			{"Effect": "Allow", "Action": ["iot:Connect"], "Resource": ["` + arn + `client/${iot:Connection.Thing.ThingName}"]},
			{"Effect": "Allow", "Action": ["iot:Subscribe"], "Resource": ["` + arn + `topicfilter/${iot:Connection.Thing.ThingName}/room*"]},
			{"Effect": "Allow", "Action": ["iot:Receive"], "Resource": ["` + arn + `topic/${iot:Connection.Thing.ThingName}/room*"]}]}`,
			[]awsCheck{{"thing1", Subscribe, "thing1/room1", true}, {"thing1", Subscribe, "thing1/room2", true},
				{"thing1", Subscribe, "thing1/kitchen", false}, {"thing1", Receive, "thing1/room1", true},
				{"thing1", Receive, "thing2/room1", false}, {"thing1", Publish, "thing1/room1", false}}},
		{pagePubSub, "unregistered: subscribe and receive clientid/room*", `{"Version": "2012-10-17", "Statement": [
			{"Effect": "Allow", "Action": ["iot:Connect"], "Resource": ["` + arn + `client/client1", "` + arn + `client/client2", "` + arn + `client/client3"]},
			{"Effect": "Allow", "Action": ["iot:Subscribe"], "Resource": ["` + arn + `topicfilter/${iot:ClientId}/room*"]},
			{"Effect": "Allow", "Action": ["iot:Receive"], "Resource": ["` + arn + `topic/${iot:ClientId}/room*"]}]}`,
			[]awsCheck{{"client1", Subscribe, "client1/room1", true}, {"client1", Subscribe, "client2/room1", false},
				{"client1", Receive, "client1/room9", true}}},
		{pagePubSub, "Allow a/* and Deny a/restricted/* still allows a/#", `{"Version": "2012-10-17", "Statement": [
			{"Effect": "Allow", "Action": "iot:Subscribe", "Resource": "` + arn + `topicfilter/a/*"},
			{"Effect": "Deny", "Action": "iot:Subscribe", "Resource": "` + arn + `topicfilter/a/restricted/*"},
			{"Effect": "Allow", "Action": "iot:Receive", "NotResource": "` + arn + `topic/a/restricted/*"}]}`,
			[]awsCheck{{"thing1", Subscribe, "a/#", true}, {"thing1", Subscribe, "a/restricted/#", false},
				{"thing1", Receive, "a/open", true}, {"thing1", Receive, "a/restricted/secret", false}}},
		{pagePubSub, "subscribe to device/update, receive denied", `{"Version": "2012-10-17", "Statement": [
			{"Effect": "Allow", "Action": "iot:Subscribe", "Resource": "` + arn + `topicfilter/device/update"},
			{"Effect": "Deny", "Action": "iot:Receive", "Resource": "` + arn + `topic/device/update"}]}`,
			[]awsCheck{{"thing1", Subscribe, "device/update", true}, {"thing1", Receive, "device/update", false}}},
		{pagePubSub, "registered: + is literal in topicfilter/some/+/topic", `{"Version": "2012-10-17", "Statement": [
			{"Effect": "Allow", "Action": ["iot:Connect"], "Resource": ["` + arn + `client/${iot:Connection.Thing.ThingName}"]},
			{"Effect": "Allow", "Action": ["iot:Subscribe"], "Resource": ["` + arn + `topicfilter/some/+/topic"]}]}`,
			[]awsCheck{{"thing1", Subscribe, "some/+/topic", true}, {"thing1", Subscribe, "some/string1/topic", false}}},
		{pagePubSub, "registered: * in topicfilter/some/*/topic", `{"Version": "2012-10-17", "Statement": [
			{"Effect": "Allow", "Action": ["iot:Connect"], "Resource": ["` + arn + `client/${iot:Connection.Thing.ThingName}"]},
			{"Effect": "Allow", "Action": ["iot:Subscribe"], "Resource": ["` + arn + `topicfilter/some/*/topic"]}]}`,
			[]awsCheck{{"thing1", Subscribe, "some/string1/topic", true}, {"thing1", Subscribe, "some/+/topic", true},
				{"thing1", Subscribe, "some/topic", false}}},
		{pagePubSub, "unregistered: client1 subscribes to some/+/topic only", `{"Version": "2012-10-17", "Statement": [
			{"Effect": "Allow", "Action": ["iot:Connect"], "Resource": ["` + arn + `client/client1"]},
			{"Effect": "Allow", "Action": ["iot:Subscribe"], "Resource": ["` + arn + `topicfilter/some/+/topic"]}]}`,
			[]awsCheck{{"client1", Connect, "client1", true}, {"client1", Subscribe, "some/+/topic", true},
				{"client1", Subscribe, "some/x/topic", false}}},
		{pagePubSub, "registered: two topic filters", `{"Version": "2012-10-17", "Statement": [
			{"Effect": "Allow", "Action": ["iot:Connect"], "Resource": ["` + arn + `client/${iot:Connection.Thing.ThingName}"]},
			{"Effect": "Allow", "Action": ["iot:Subscribe"], "Resource": ["` + arn + `topicfilter/my/topic", "` + arn + `topicfilter/my/othertopic"]}]}`,
			[]awsCheck{{"thing1", Subscribe, "my/topic", true}, {"thing1", Subscribe, "my/othertopic", true},
				{"thing1", Subscribe, "my/#", false}}},
		{pagePubSub, "registered: ${iot:Thing.ThingName} is no AWS variable, so that statement never applies", `{"Version": "2012-10-17", "Statement": [
			{"Effect": "Allow", "Action": ["iot:Connect"], "Resource": ["` + arn + `client/${iot:Connection.Thing.ThingName}"]},
			{"Effect": "Allow", "Action": ["iot:Publish"], "Resource": ["` + arn + `topic/my/topic/${iot:Thing.ThingName}"]}]}`,
			[]awsCheck{{"thing1", Connect, "thing1", true}, {"thing1", Publish, "my/topic/thing1", false},
				{"thing1", Publish, "my/topic/${iot:Thing.ThingName}", false}}},
		{pagePubSub, "unregistered: publish under the client ID except .../bar", `{"Version": "2012-10-17", "Statement": [
			{"Effect": "Allow", "Action": ["iot:Connect"], "Resource": ["` + arn + `client/client1", "` + arn + `client/client2"]},
			{"Effect": "Allow", "Action": ["iot:Publish"], "Resource": ["` + arn + `topic/${iot:ClientId}/*"]},
			{"Effect": "Deny", "Action": ["iot:Publish"], "Resource": ["` + arn + `topic/${iot:ClientId}/bar"]}]}`,
			[]awsCheck{{"client1", Publish, "client1/foo", true}, {"client1", Publish, "client1/bar", false},
				{"client2", Publish, "client2/x/bar", true}}},
		{pagePubSub, "registered: subscribe and receive one topic", `{"Version": "2012-10-17", "Statement": [
			{"Effect": "Allow", "Action": ["iot:Connect"], "Resource": ["` + arn + `client/${iot:Connection.Thing.ThingName}"]},
			{"Effect": "Allow", "Action": ["iot:Subscribe"], "Resource": ["` + arn + `topicfilter/my/topic"]},
			{"Effect": "Allow", "Action": ["iot:Receive"], "Resource": ["` + arn + `topic/my/topic"]}]}`,
			[]awsCheck{{"thing1", Subscribe, "my/topic", true}, {"thing1", Receive, "my/topic", true},
				{"thing1", Receive, "my/other", false}, {"thing1", Publish, "my/topic", false}}},

		// ---- Connect and publish policy examples ----
		{pageConnectPub, "registered: publish on the thing name topic", `{"Version": "2012-10-17", "Statement": [
			{"Effect": "Allow", "Action": ["iot:Publish"], "Resource": ["` + arn + `topic/${iot:Connection.Thing.ThingName}"]},
			{"Effect": "Allow", "Action": ["iot:Connect"], "Resource": ["` + arn + `client/${iot:Connection.Thing.ThingName}"]}]}`,
			[]awsCheck{{"thing1", Connect, "thing1", true}, {"thing1", Publish, "thing1", true},
				{"thing1", Publish, "thing2", false}, {"thing1 as client1", Connect, "client1", false}}},
		{pageConnectPub, "unregistered: client1 publishes on its client ID topic", `{"Version": "2012-10-17", "Statement": [
			{"Effect": "Allow", "Action": ["iot:Publish"], "Resource": ["` + arn + `topic/${iot:ClientId}"]},
			{"Effect": "Allow", "Action": ["iot:Connect"], "Resource": ["` + arn + `client/client1"]}]}`,
			[]awsCheck{{"client1", Connect, "client1", true}, {"client1", Publish, "client1", true},
				{"client2", Connect, "client2", false}, {"plus", Publish, "+", true}}},

		// ---- Retained message policy examples ----
		{pageRetained, "device1 publishes retained on one topic", `{"Version": "2012-10-17", "Statement": [
			{"Effect": "Allow", "Action": ["iot:Connect"], "Resource": ["` + arn + `client/device1"]},
			{"Effect": "Allow", "Action": ["iot:Publish", "iot:RetainPublish"], "Resource": ["` + arn + `topic/device/sample/configuration"]}]}`,
			[]awsCheck{{"device1 clean+will", Connect, "device1", true}, {"device1 clean+will", RetainPublish, "device/sample/configuration", true},
				{"device1 clean+will", Publish, "device/sample/configuration", true}, {"device1 clean+will", RetainPublish, "device/other", false}}},
		{pageRetained, "connect with a retained will", `{"Version": "2012-10-17", "Statement": [
			{"Effect": "Allow", "Action": ["iot:Connect"], "Resource": ["` + arn + `client/device1"],
			 "Condition": {"ForAllValues:StringEquals": {"iot:ConnectAttributes": ["LastWill"]}}},
			{"Effect": "Allow", "Action": ["iot:Publish", "iot:RetainPublish"], "Resource": ["` + arn + `topic/will"]}]}`,
			[]awsCheck{{"device1 clean+will", Connect, "device1", true}, {"device1 clean+will", RetainPublish, "will", true},
				{"persistent", Connect, "client1", false}}},

		// ---- Thing policy examples ----
		{pageThing, "connect when the certificate is attached to the thing", `{"Version": "2012-10-17", "Statement": [
			{"Effect": "Allow", "Action": ["iot:Connect"], "Resource": ["*"],
			 "Condition": {"Bool": {"iot:Connection.Thing.IsAttached": ["true"]}}}]}`,
			[]awsCheck{{"thing1", Connect, "thing1", true}, {"thing1 as client1", Connect, "client1", false},
				{"client1", Connect, "client1", false}}},
		{pageThing, "publish when the thing has the type and the attribute", `{"Version": "2012-10-17", "Statement": [
			{"Effect": "Allow", "Action": ["iot:Publish"], "Resource": "` + arn + `topic/device/stats",
			 "Condition": {"StringEquals": {"iot:Connection.Thing.Attributes[attributeName]": "attributeValue",
			                                "iot:Connection.Thing.ThingTypeName": "Thing_Type_Name"},
			               "Bool": {"iot:Connection.Thing.IsAttached": "true"}}}]}`,
			[]awsCheck{{"thing1", Publish, "device/stats", true}, {"thing2", Publish, "device/stats", false},
				{"thing1 as client1", Publish, "device/stats", false}, {"client1", Publish, "device/stats", false}}},
		{pageThing, "publish under a thing attribute", `{"Version": "2012-10-17", "Statement": [
			{"Effect": "Allow", "Action": ["iot:Publish"], "Resource": "` + arn + `topic/${iot:Connection.Thing.Attributes[attributeName]}/*"}]}`,
			[]awsCheck{{"thing1", Publish, "attributeValue/x", true}, {"thing2", Publish, "attributeValue/x", false},
				{"thing2", Publish, "other/x", true}, {"client1", Publish, "attributeValue/x", false}}},

		// ---- Certificate policy examples ----
		{pageCertificate, "registered: publish on the certificate ID", `{"Version": "2012-10-17", "Statement": [
			{"Effect": "Allow", "Action": ["iot:Publish"], "Resource": ["` + arn + `topic/${iot:CertificateId}"]},
			{"Effect": "Allow", "Action": ["iot:Connect"], "Resource": ["` + arn + `client/${iot:Connection.Thing.ThingName}"]}]}`,
			[]awsCheck{{"thing1", Connect, "thing1", true}, {"thing1", Publish, certID(certCN), true},
				{"thing1", Publish, certID(certAdmin), false}}},
		{pageCertificate, "unregistered: publish on the certificate ID", `{"Version": "2012-10-17", "Statement": [
			{"Effect": "Allow", "Action": ["iot:Publish"], "Resource": ["` + arn + `topic/${iot:CertificateId}"]},
			{"Effect": "Allow", "Action": ["iot:Connect"], "Resource": ["` + arn + `client/client1", "` + arn + `client/client2", "` + arn + `client/client3"]}]}`,
			[]awsCheck{{"client2", Connect, "client2", true}, {"client2", Publish, certID(certCN), true},
				{"client4", Connect, "client4", false}}},
		{pageCertificate, "registered: publish on the subject common name", `{"Version": "2012-10-17", "Statement": [
			{"Effect": "Allow", "Action": ["iot:Publish"], "Resource": ["` + arn + `topic/${iot:Certificate.Subject.CommonName}"]},
			{"Effect": "Allow", "Action": ["iot:Connect"], "Resource": ["` + arn + `client/${iot:Connection.Thing.ThingName}"]}]}`,
			[]awsCheck{{"thing1", Publish, "thing1", true}, {"thing1", Publish, "thing2", false}}},
		{pageCertificate, "unregistered: publish on the subject common name", `{"Version": "2012-10-17", "Statement": [
			{"Effect": "Allow", "Action": ["iot:Publish"], "Resource": ["` + arn + `topic/${iot:Certificate.Subject.CommonName}"]},
			{"Effect": "Allow", "Action": ["iot:Connect"], "Resource": ["` + arn + `client/client1", "` + arn + `client/client2", "` + arn + `client/client3"]}]}`,
			[]awsCheck{{"client3", Connect, "client3", true}, {"client3", Publish, "thing1", true}, {"client3", Publish, "client3", false}}},
		{pageCertificate, "registered: admin/* when Subject.CommonName.2 is Administrator", `{"Version": "2012-10-17", "Statement": [
			{"Effect": "Allow", "Action": ["iot:Connect"], "Resource": ["` + arn + `client/${iot:Connection.Thing.ThingName}"]},
			{"Effect": "Allow", "Action": ["iot:Publish"], "Resource": ["` + arn + `topic/admin/*"],
			 "Condition": {"StringEquals": {"iot:Certificate.Subject.CommonName.2": "Administrator"}}}]}`,
			[]awsCheck{{"admin thing1", Publish, "admin/reboot", true}, {"admin first", Publish, "admin/reboot", false},
				{"thing1", Publish, "admin/reboot", false}}},
		{pageCertificate, "unregistered: admin/* when Subject.CommonName.2 is Administrator", `{"Version": "2012-10-17", "Statement": [
			{"Effect": "Allow", "Action": ["iot:Connect"], "Resource": ["` + arn + `client/client1", "` + arn + `client/client2", "` + arn + `client/client3"]},
			{"Effect": "Allow", "Action": ["iot:Publish"], "Resource": ["` + arn + `topic/admin/*"],
			 "Condition": {"StringEquals": {"iot:Certificate.Subject.CommonName.2": "Administrator"}}}]}`,
			[]awsCheck{{"admin client1", Connect, "client1", true}, {"admin client1", Publish, "admin/x", true},
				{"no admin client", Publish, "admin/x", false}}},
		{pageCertificate, "registered: admin/THING when any common name is Administrator", `{"Version": "2012-10-17", "Statement": [
			{"Effect": "Allow", "Action": ["iot:Connect"], "Resource": ["` + arn + `client/${iot:Connection.Thing.ThingName}"]},
			{"Effect": "Allow", "Action": ["iot:Publish"], "Resource": ["` + arn + `topic/admin/${iot:Connection.Thing.ThingName}"],
			 "Condition": {"ForAnyValue:StringEquals": {"iot:Certificate.Subject.CommonName.List": "Administrator"}}}]}`,
			[]awsCheck{{"admin thing1", Publish, "admin/thing1", true}, {"admin first", Publish, "admin/thing1", true},
				{"thing1", Publish, "admin/thing1", false}, {"admin thing1", Publish, "admin/thing2", false}}},
		{pageCertificate, "unregistered: admin when any common name is Administrator", `{"Version": "2012-10-17", "Statement": [
			{"Effect": "Allow", "Action": ["iot:Connect"], "Resource": ["` + arn + `client/client1", "` + arn + `client/client2", "` + arn + `client/client3"]},
			{"Effect": "Allow", "Action": ["iot:Publish"], "Resource": ["` + arn + `topic/admin"],
			 "Condition": {"ForAnyValue:StringEquals": {"iot:Certificate.Subject.CommonName.List": "Administrator"}}}]}`,
			[]awsCheck{{"admin client1", Publish, "admin", true}, {"no admin client", Publish, "admin", false}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e, err := Load(Source{Name: "devices.yaml", Data: []byte(awsRegistry)},
				[]Source{{Name: "example.json", Data: []byte(tt.doc)}})
			if err != nil {
				t.Fatalf("the example from %s does not load: %v", tt.page, err)
			}
			for _, c := range tt.checks {
				id, ok := ids[c.who]
				if !ok {
					t.Fatalf("no identity %q", c.who)
				}
				s, err := e.Bind(id)
				if err != nil {
					t.Fatalf("Bind(%s): %v", c.who, err)
				}
				if got := s.Allowed(c.action, c.res); got != c.want {
					t.Errorf("%s: %s %s %q = %v; want %v (as %s describes)\n%s", tt.name, c.who, c.action, c.res, got, c.want, tt.page, s.Explain(c.action, c.res))
				}
			}
		})
	}
}
