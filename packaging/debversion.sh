#!/bin/sh
# Prints the Debian version of the checkout in the current directory, from git describe:
#   at tag v1.2.3                  -> 1.2.3-1
#   4 commits after tag v1.2.3     -> 1.2.3+git20261122.1a2b3c4-1   (sorts after 1.2.3-1)
#   no tag yet                     -> 0.1.0~git20261122.1a2b3c4-1   (sorts before 0.1.0-1)
#   uncommitted changes            -> ".dirty" before the revision
#   not a git checkout             -> 0.1.0~unknown-1
# The date is the commit date (UTC), so two builds of one commit get the same version. The
# Debian revision "-1" marks the package as non-native (lintian then expects the
# changelog.Debian.gz that we ship).
set -eu

base=0.1.0
if ! sha=$(git rev-parse --short=7 HEAD 2>/dev/null); then
	echo "$base~unknown-1"
	exit 0
fi
date=$(TZ=UTC git log -1 --date=format-local:%Y%m%d --format=%cd HEAD)
dirty=
if [ -n "$(git status --porcelain --untracked-files=no 2>/dev/null)" ]; then
	dirty=.dirty
fi
if tag=$(git describe --tags --abbrev=0 --match 'v[0-9]*' 2>/dev/null); then
	ver=${tag#v}
	ver=$(printf '%s' "$ver" | tr -- '-' '~') # v1.2.0-rc1 -> 1.2.0~rc1 (sorts before 1.2.0)
	if [ "$(git rev-list --count "$tag"..HEAD)" = 0 ]; then
		echo "$ver$dirty-1"
	else
		echo "$ver+git$date.$sha$dirty-1"
	fi
else
	echo "$base~git$date.$sha$dirty-1"
fi
