// Package timefmt formats and parses times with the date patterns of AWS IoT
// SQL's parse_time (Joda-Time patterns) and time_to_epoch (java.time, JDK 11,
// patterns), as the AWS IoT SQL reference says. Both share the common
// letters; this package implements the ones below and Compile refuses a
// pattern with any other letter.
//
//	G era (AD)          y/u year (yy: two digits)   M month (MMM Jan, MMMM January)
//	d day of month      D day of year               E weekday (EEEE Monday)
//	a AM/PM             H hour 0-23  k 1-24  h 1-12  K 0-11
//	m minute            s second     S fraction of a second
//	z zone (format: abbreviation; parse: abbreviation or region ID)
//	Z offset -0600 (ZZ -06:00, ZZZ region ID)   VV region ID    X/x offset
//	'text' literal, '' a quote
//
// Zone IDs (Zone) are region IDs, UTC/GMT/Z, the US abbreviations and
// offsets. The zone database is compiled in (time/tzdata): a Raspberry Pi
// OS image may lack /usr/share/zoneinfo.
//
// It is pure: the standard library only, nothing of this module (gateway/rules
// imports it, never the other way round), no I/O besides the compiled-in
// zone database.
package timefmt
