package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"runtime/debug"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
)

// buildTime and commit may be set at link time (make build does):
// -ldflags "-X main.buildTime=$(date -u +%Y-%m-%dT%H:%M:%SZ) -X main.commit=$(git rev-parse HEAD)".
// Go records no build time itself, and records the commit only where it
// stamps version control information (not with -buildvcs=false).
var buildTime, commit string

// buildInfo is what payrail version prints and payrail_build_info labels.
type buildInfo struct {
	Version    string `json:"version"`
	Commit     string `json:"commit"`
	CommitTime string `json:"commit_time,omitempty"`
	Modified   bool   `json:"modified"`
	BuildTime  string `json:"build_time,omitempty"`
	GoVersion  string `json:"go_version"`
}

// readBuildInfo is runtime/debug.ReadBuildInfo; tests replace it.
var readBuildInfo = debug.ReadBuildInfo

func currentBuild() buildInfo {
	b := buildInfo{Version: "unknown", Commit: "unknown", GoVersion: "unknown", BuildTime: buildTime}
	if commit != "" {
		b.Commit = commit
	}
	bi, ok := readBuildInfo()
	if !ok {
		return b
	}
	if bi.Main.Version != "" {
		b.Version = bi.Main.Version
	}
	if bi.GoVersion != "" {
		b.GoVersion = bi.GoVersion
	}
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			b.Commit = s.Value
		case "vcs.time":
			b.CommitTime = s.Value
		case "vcs.modified":
			b.Modified = s.Value == "true"
		}
	}
	return b
}

func (b buildInfo) print(w io.Writer) {
	commit := b.Commit
	if b.Modified {
		commit += " (modified)"
	}
	fmt.Fprintf(w, "payrail %s\ncommit:      %s\n", b.Version, commit)
	if b.CommitTime != "" {
		fmt.Fprintf(w, "commit time: %s\n", b.CommitTime)
	}
	built := b.BuildTime
	if built == "" {
		built = "not recorded"
	}
	fmt.Fprintf(w, "build time:  %s\ngo:          %s\n", built, b.GoVersion)
}

// runVersion runs payrail version [--json].
func runVersion(_ context.Context, args []string) error {
	fs := flag.NewFlagSet("version", flag.ContinueOnError)
	asJSON := fs.Bool("json", false, "print one JSON object")
	if err := parseFlags(fs, args, nil); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(os.Stderr, "payrail version: unexpected argument %q\n", fs.Arg(0))
		return errUsage
	}
	b := currentBuild()
	if *asJSON {
		return json.NewEncoder(os.Stdout).Encode(b)
	}
	b.print(os.Stdout)
	return nil
}

// newRegistry is the metrics registry of every role: the Go and process
// collectors and payrail_build_info.
func newRegistry() *prometheus.Registry {
	reg := prometheus.NewRegistry()
	b := currentBuild()
	info := prometheus.NewGauge(prometheus.GaugeOpts{
		Name:        "payrail_build_info",
		Help:        "Always 1; the labels say which build of payrail runs.",
		ConstLabels: prometheus.Labels{"version": b.Version, "commit": b.Commit, "go_version": b.GoVersion},
	})
	info.Set(1)
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}), info)
	return reg
}
