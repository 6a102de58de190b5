package images

import (
	"fmt"
	"os"
	"runtime/debug"
	"strconv"
	"time"
)

// EpochSource says where a build's epoch, the time every timestamp in
// the image is set to, came from. Its value is what tandem-image.json
// records; String says it for people.
type EpochSource string

// Where an epoch comes from, in the order Epoch looks.
const (
	// EpochFromEnv is the SOURCE_DATE_EPOCH environment variable
	// (reproducible-builds.org's).
	EpochFromEnv EpochSource = "SOURCE_DATE_EPOCH"
	// EpochFromCommit is the commit time of the Tandem source the
	// running tandem was built from: the vcs.time that `go build`
	// records in a git checkout (unless -buildvcs=false).
	EpochFromCommit EpochSource = "vcs.time"
	// EpochFixed is FixedEpoch.
	EpochFixed EpochSource = "fixed"
)

// String names the source as `tandem image inspect` prints it.
func (s EpochSource) String() string {
	switch s {
	case EpochFromEnv:
		return "SOURCE_DATE_EPOCH"
	case EpochFromCommit:
		return "the source's commit time"
	case EpochFixed:
		return "Tandem's fixed epoch"
	case "":
		return "an unrecorded source"
	}
	return string(s)
}

// FixedEpoch is the epoch when SOURCE_DATE_EPOCH is unset and the
// running tandem records no commit time: 2024-01-01T00:00:00Z.
const FixedEpoch = 1704067200

// The range an epoch must lie in. MinEpoch, 1980-01-01T00:00:00Z, is the
// earliest time a FAT directory entry holds (and mke2fs takes a time of
// 0 for none and stamps the clock's instead). MaxEpoch,
// 2106-02-07T06:28:15Z, is the last a 32-bit time holds: the boot
// script's uImage header and the initramfs's cpio headers have no more.
const (
	MinEpoch int64 = 315532800
	MaxEpoch int64 = 1<<32 - 1
)

// Epoch returns the epoch for a build and where it came from:
// SOURCE_DATE_EPOCH when it is set (and not empty), else the commit time
// of the source the running program was built from, else FixedEpoch. So
// two builds of the same inputs by the same tandem are byte-identical
// whether or not SOURCE_DATE_EPOCH is set.
func Epoch() (int64, EpochSource, error) {
	bi, _ := debug.ReadBuildInfo()
	return epochFrom(os.Getenv("SOURCE_DATE_EPOCH"), bi)
}

// epochFrom is Epoch with SOURCE_DATE_EPOCH's value and the build
// information given.
func epochFrom(env string, bi *debug.BuildInfo) (int64, EpochSource, error) {
	if env != "" {
		v, err := strconv.ParseInt(env, 10, 64)
		if err != nil || v < MinEpoch || v > MaxEpoch {
			return 0, "", fmt.Errorf("SOURCE_DATE_EPOCH=%q: want whole seconds since 1970 from %d (1980-01-01, the earliest FAT records) to %d (2106-02-07), or unset it for Tandem's default epoch", env, MinEpoch, MaxEpoch)
		}
		return v, EpochFromEnv, nil
	}
	if bi != nil {
		for _, s := range bi.Settings {
			if s.Key != "vcs.time" {
				continue
			}
			if t, err := time.Parse(time.RFC3339, s.Value); err == nil && t.Unix() >= MinEpoch && t.Unix() <= MaxEpoch {
				return t.Unix(), EpochFromCommit, nil
			}
		}
	}
	return FixedEpoch, EpochFixed, nil
}

// checkEpoch checks that an epoch lies in the range its timestamps hold.
func checkEpoch(epoch int64) error {
	if epoch < MinEpoch || epoch > MaxEpoch {
		return fmt.Errorf("image build: epoch %d (%s) outside %d (1980-01-01, the earliest FAT records) to %d (2106-02-07): set Config.Epoch within it, or leave it 0 for images.Epoch's",
			epoch, time.Unix(epoch, 0).UTC().Format(time.RFC3339), MinEpoch, MaxEpoch)
	}
	return nil
}
