// Command payrail runs the payrail payment-execution service: the API, the
// workers, the outbox relay and the operator tools, chosen by subcommand.
package main

import (
	"fmt"
	"os"
)

func main() {
	fmt.Fprintln(os.Stderr, "payrail: under construction; see README.md")
	os.Exit(2)
}
