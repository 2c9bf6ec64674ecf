package broker

import (
	"log/slog"
	"strconv"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/edgegw/edgegw/gateway/audit"
)

// Deliveries mochi drops at a subscriber's in-flight limit.
//
// mochi v2.7.9 publishToClient drops a QoS >= 1 delivery in two places
// before it reaches the subscriber's write queue, and neither calls
// OnPublishDropped:
//
//   - the subscriber already has Capabilities.MaximumInflight
//     unacknowledged messages: no hook at all; mochi only increments the
//     server-wide Info.InflightDropped and logs Warn "client store quota
//     reached" with the attribute client = the client ID;
//   - no free packet ID: OnPacketIDExhausted (and Info.InflightDropped).
//
// Info.InflightDropped is one number for the whole server, so it cannot say
// whose delivery was lost. The one per-client signal of the quota path is
// mochi's log record: packetRedactor (logging.go) hands every record with
// that message to inflightFull, which counts it in Metrics.InflightFull and
// audits it per client like OnPublishDropped (a drop event, rate limited per
// device by the audit log, with a summary of what was suppressed); the
// record itself goes to Debug, since one slow subscriber produces one
// warning per lost message. OnPacketIDExhausted does the same from the
// hook. The test (TestInflightFullCounted) checks that InflightFull equals
// mochi's Info.InflightDropped, so a mochi release that changes the message
// fails it.
const mochiQuotaReached = "client store quota reached"

// inflightFull counts and audits one delivery mochi dropped for clientID.
func (b *Broker) inflightFull(clientID, reason string) {
	if b.metrics != nil {
		b.metrics.InflightFull.Add(1)
	}
	dev := clientID
	if cl, ok := b.srv.Clients.Get(clientID); ok {
		if st := b.state(cl); st != nil && st.id.ThingName != "" {
			dev = st.id.ThingName
		}
	}
	b.audit.Record(audit.Event{Event: audit.EventDrop, Device: dev, ClientID: clientID, Reason: reason})
}

func inflightFullReason(maxInflight uint16) string {
	return "subscriber has " + strconv.Itoa(int(maxInflight)) + " unacknowledged messages in flight (QoS 1/2 delivery dropped)"
}

// OnPacketIDExhausted: mochi found no free packet ID for a delivery and
// dropped it.
func (h *hook) OnPacketIDExhausted(cl *mqtt.Client, _ packets.Packet) {
	h.b.inflightFull(cl.ID, "no free packet ID for the subscriber (QoS 1/2 delivery dropped)")
}

// quotaRecord reports whether r is mochi's "client store quota reached"
// warning, and the client ID it names.
func quotaRecord(r slog.Record) (string, bool) {
	if r.Message != mochiQuotaReached {
		return "", false
	}
	var id string
	r.Attrs(func(a slog.Attr) bool {
		if a.Key == "client" {
			id = a.Value.String()
			return false
		}
		return true
	})
	return id, true
}

// quotaLevel is the level mochi's per-drop warning is logged at once it is
// counted and audited.
const quotaLevel = slog.LevelDebug
