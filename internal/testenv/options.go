package testenv

import (
	"errors"
	"fmt"
	"os"
	"strconv"
)

// The environment variables the harness reads; see the package comment.
const (
	// EnvDatabaseURL names a running PostgreSQL server, as a URL whose
	// user may create and drop databases. Empty: start a container.
	EnvDatabaseURL = "PAYRAIL_TEST_DATABASE_URL"
	// EnvNATSURL names a running NATS server with JetStream. Empty: start
	// a container.
	EnvNATSURL = "PAYRAIL_TEST_NATS_URL"
	// EnvPostgresImage is the PostgreSQL image for containers.
	EnvPostgresImage = "PAYRAIL_TEST_POSTGRES_IMAGE"
	// EnvNATSImage is the NATS image for containers.
	EnvNATSImage = "PAYRAIL_TEST_NATS_IMAGE"
	// EnvHostNetwork, when true (1, true), runs containers on the host's
	// network on free loopback ports instead of mapping their ports.
	EnvHostNetwork = "PAYRAIL_TEST_DOCKER_HOST_NETWORK"
)

// Default images: the official ones, at the versions payrail's CI machines
// run as services, so both ways of running the suite test the same servers.
const (
	DefaultPostgresImage = "postgres:15-alpine"
	DefaultNATSImage     = "nats:2.9-alpine"
)

// Options says where an Env's services come from. Each service whose URL is
// empty is started as a container.
type Options struct {
	// Package names the test package; it goes into the database name and
	// Env.Name. Required.
	Package string

	// DatabaseURL is a PostgreSQL server to create the package's database
	// on. Empty: start a container from PostgresImage.
	DatabaseURL string
	// NATSURL is a NATS server with JetStream. Empty: start a container
	// from NATSImage.
	NATSURL string

	// PostgresImage and NATSImage are the container images; empty means
	// DefaultPostgresImage and DefaultNATSImage.
	PostgresImage string
	NATSImage     string

	// HostNetwork runs containers on the host's network, each server on a
	// free port of 127.0.0.1 given to it as an argument, for Docker engines
	// without a bridge network. Otherwise the engine maps container ports
	// to host ports, as Docker does on a laptop.
	HostNetwork bool
}

// OptionsFromEnv returns the options for package pkg that the environment
// variables above give.
func OptionsFromEnv(pkg string) (Options, error) {
	return optionsFrom(pkg, os.Getenv)
}

func optionsFrom(pkg string, getenv func(string) string) (Options, error) {
	opts := Options{
		Package:       pkg,
		DatabaseURL:   getenv(EnvDatabaseURL),
		NATSURL:       getenv(EnvNATSURL),
		PostgresImage: getenv(EnvPostgresImage),
		NATSImage:     getenv(EnvNATSImage),
	}
	if v := getenv(EnvHostNetwork); v != "" {
		on, err := strconv.ParseBool(v)
		if err != nil {
			return Options{}, fmt.Errorf("%s=%q: want 1 or 0: %w", EnvHostNetwork, v, err)
		}
		opts.HostNetwork = on
	}
	return opts, nil
}

func (o Options) withDefaults() (Options, error) {
	if o.Package == "" {
		return o, errors.New("testenv: Options.Package is empty")
	}
	if o.PostgresImage == "" {
		o.PostgresImage = DefaultPostgresImage
	}
	if o.NATSImage == "" {
		o.NATSImage = DefaultNATSImage
	}
	return o, nil
}
