package queuecmd

import (
	"context"
	"fmt"
	"net/url"
	"strings"

	"github.com/edgegw/edgegw/gateway/config"
	"github.com/edgegw/edgegw/gateway/uplink"
	"github.com/edgegw/edgegw/store"
)

// bridgeStoreOptions is the queue of the bridge named name (""): the queue
// in store.dir, the default bridge's).
func bridgeStoreOptions(ctx context.Context, cfg *config.Config, name string) (store.Options, error) {
	if name == "" {
		return uplink.StoreOptionsFromConfig(ctx, cfg)
	}
	var names []string
	for _, b := range cfg.BridgeList() {
		if b.BridgeName() == name {
			return uplink.StoreOptionsForBridge(ctx, cfg, b)
		}
		names = append(names, b.BridgeName())
	}
	if len(names) == 0 {
		return store.Options{}, fmt.Errorf("--bridge %s: %s has no bridge", name, cfg.File)
	}
	return store.Options{}, fmt.Errorf("--bridge %s: no such bridge in %s; its bridges: %s", name, cfg.File, strings.Join(names, ", "))
}

// queueStatsPath asks the running daemon for one bridge's queue.
func queueStatsPath(bridge string) string {
	if bridge == "" {
		return "/queue/stats"
	}
	return "/queue/stats?bridge=" + url.QueryEscape(bridge)
}
