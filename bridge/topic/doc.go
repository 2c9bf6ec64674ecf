// Package topic is the one owner of MQTT topic syntax: which strings are
// valid topic filters (what a SUBSCRIBE, a bridge route or a config file
// names) and valid topic names (what a PUBLISH carries).
//
// Both the bridge (route validation) and gateway/config (file:line errors
// for edgegw.yaml) use it, so the rule is written once. Its errors say what
// is wrong without repeating the topic; callers add where it came from.
//
// It is a pure leaf: it imports nothing of edgegw (and no third-party
// package), so gateway/config may import it without importing a runtime
// package.
package topic
