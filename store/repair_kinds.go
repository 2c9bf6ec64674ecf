package store

// RepairKinds lists every RepairKind, in the order metrics report them (a
// counter per kind starts at 0, so an alert can watch a kind never seen).
var RepairKinds = []RepairKind{RepairEmptyLog, RepairShortHeader, RepairDiscard, RepairManifestTail, RepairManifest}
