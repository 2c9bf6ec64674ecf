package config

import "github.com/edgegw/edgegw/bridge/topic"

// MaxTopicBytes is the longest topic or filter MQTT can carry (topic.MaxBytes).
const MaxTopicBytes = topic.MaxBytes

// ValidateTopicFilter reports whether filter is a valid MQTT topic filter.
// The rule and its messages are package topic's (topic.ValidateFilter); the
// error says what is wrong without repeating the filter.
func ValidateTopicFilter(filter string) error { return topic.ValidateFilter(filter) }

// ValidateTopicName reports whether name is a valid MQTT topic name (what a
// PUBLISH carries): topic.ValidateName. Prefixes in routes are checked with it too.
func ValidateTopicName(name string) error { return topic.ValidateName(name) }
