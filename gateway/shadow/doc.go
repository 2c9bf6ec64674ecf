// Package shadow serves AWS IoT Device Shadows on the local broker with the MQTT
// API AWS documents, keeps them in a Store, and keeps chosen shadows in sync with
// the cloud's Device Shadow service.
//
// # The API (as AWS documents it)
//
// Pages of the AWS IoT Core developer guide, cited by name in this package:
//   - device-shadow-mqtt: https://docs.aws.amazon.com/iot/latest/developerguide/device-shadow-mqtt.html
//   - device-shadow-document: https://docs.aws.amazon.com/iot/latest/developerguide/device-shadow-document.html
//   - device-shadow-data-flow: https://docs.aws.amazon.com/iot/latest/developerguide/device-shadow-data-flow.html
//   - device-shadow-error-messages: https://docs.aws.amazon.com/iot/latest/developerguide/device-shadow-error-messages.html
//   - diagnosing-shadows: https://docs.aws.amazon.com/iot/latest/developerguide/diagnosing-shadows.html
//   - using-device-shadows: https://docs.aws.amazon.com/iot/latest/developerguide/using-device-shadows.html
//   - the GetThingShadow API reference (name rules): https://docs.aws.amazon.com/iot/latest/apireference/API_iotdata_GetThingShadow.html
//
// Topics: $aws/things/THING/shadow[/name/SHADOW]/{get,update,delete}; the service
// answers on .../get/{accepted,rejected}, .../update/{accepted,rejected,delta,
// documents} and .../delete/{accepted,rejected}. Thing names are 1-128 of
// [a-zA-Z0-9:_-], shadow names 1-64 of [$a-zA-Z0-9:_-].
//
// Update: state.desired and state.reported merge into the shadow field by field;
// null deletes a field (and a whole section); nested objects merge; arrays and
// other values are replaced whole; an array may not hold null. Metadata keeps an
// epoch-seconds timestamp per field (per element for arrays). version increases
// by one per accepted update; an update naming a version that is not the current
// one is refused with 409 "Version conflict". clientToken (at most 64 bytes) is
// echoed in every response to its request. /update/accepted carries the request's
// own sections with their metadata; /update/delta is published when the request
// set desired and desired still differs from reported (the delta holds every
// differing desired field, nested objects down to the differing leaves, with the
// desired metadata); /update/documents carries previous and current. Get returns
// state (with delta), metadata (with the delta's, as in device-shadow-document's
// "Delta state" example), version and timestamp; a missing shadow is 404 "No shadow
// exists with name: 'NAME'" (NAME is the thing name for the classic shadow).
// Delete keeps the version: delete/accepted carries the deleted version, and a
// shadow updated again within 48 hours continues from it (after that, from 0).
//
// Errors and limits: 400 Invalid JSON, Missing required node: state, State node
// must be an object, Desired/Reported node must be an object, Invalid version,
// Invalid clientToken, JSON contains too many levels of nesting; maximum is 6,
// State contains an invalid node; 404; 409; 413 The payload exceeds the maximum
// size allowed (request over 128 KiB, or desired plus reported over 8 KB as
// compact JSON, metadata not counted); 415 for a payload that is not UTF-8.
// Choices where AWS documents no exact behaviour: nesting depth counts the
// levels inside desired or reported (desired {"a":1} is 1 level, so
// {"1":{"2":{"3":{"4":{"5":{"6":x}}}}}} is the deepest allowed; arrays count
// as a level); state.delta in a request is ignored (a client may send back a
// get document); any other key in state, and a null inside an array, are 400
// "State contains an invalid node"; "state": null clears both sections and is
// echoed as null in /update/accepted; a section left empty by an update is
// removed like one set to null; /update/documents has no "previous" when the
// update created the shadow. 401, 429 and "Thing not found" do not
// arise here: the broker authenticates and authorizes before Handle (it may
// answer 403 with Service.Reject), requests are handled at once, and the
// gateway has no thing registry of its own to consult.
//
// Authorization: the broker checks iot:Publish on the request topic and
// iot:Subscribe / iot:Receive on the response topics as for any topic, and may
// also check PermissionFor (iot:GetThingShadow, iot:UpdateThingShadow or
// iot:DeleteThingShadow on thing/THING, or thing/THING/SHADOW for a named
// shadow).
//
// # Persistence
//
// Everything lives in a Store under short key prefixes this package owns: "d/"
// shadows (JSON, including deleted shadows' versions), "o/" the sync outbox,
// "c/" the last known cloud states, "n" the outbox sequence. A shadow update and
// its outbox entry are written in one atomic Store batch. MemStore is the
// in-memory Store; package shadowtest has the suite every Store must pass.
//
// # Cloud sync
//
// See Syncer: the outbox, the conflict rule and why an update cannot echo.
//
// # Wiring (for the broker and the bridge)
//
// The broker passes each authorized PUBLISH whose topic Match()es to Handle
// (a shadow request is answered here: it is not retained and not queued for
// the upstream) and publishes the returned responses locally, not retained. A Store write error comes back as a 500 rejection,
// logged. The bridge owns one Syncer: it subscribes upstream to
// Subscriptions, calls Connected after the SUBACK and Disconnected when the
// session drops, feeds every message of those topics to Upstream, calls
// Pending when Wake fires and every few seconds, publishes Actions.Upstream
// upstream (QoS 1, in order) and Actions.Local on the local broker, and
// counts and audits Conflicts and Failures. A bridge route must not also
// forward the $aws/things/... topics of a synced shadow.
//
// # Imports
//
// This package is a leaf room: besides the standard library it imports only
// gateway/authz, for the thing-name rule (authz.ValidThingName, its one owner;
// the shadow-name rule, ValidShadowName, is this package's), and
// gateway/internal/jsonq, the JSON string quoting it shares with the rules
// language. It must not
// import mochi, badger, paho, prometheus or any other package of this module; the
// broker calls Handle, the bridge carries the Syncer's messages, and the store
// backs the Store interface.
package shadow
