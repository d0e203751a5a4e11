package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"time"

	"github.com/lineage-audit/lineage/internal/cliflag"
	"github.com/lineage-audit/lineage/ledger/trillian"
)

func runTrillian(args []string) error {
	if len(args) == 0 || args[0] != "create-tree" {
		return errors.New("usage: lineagectl trillian create-tree --admin-addr HOST:PORT [--name NAME]")
	}
	fs := flag.NewFlagSet("trillian create-tree", flag.ContinueOnError)
	addr := fs.String("admin-addr", "127.0.0.1:8090", "Trillian log server gRPC address (it serves the admin API too)")
	name := fs.String("name", "lineage", "display name of the tree")
	ca := fs.String("tls-ca", "", "CA file for TLS to Trillian")
	insecure := fs.Bool("insecure", false, "allow plaintext gRPC to a non-loopback address")
	fs.Usage = cliflag.Usage(fs, envPrefix, "usage: lineagectl trillian create-tree [flags]")
	if err := cliflag.Parse(fs, envPrefix, args[1:]); err != nil {
		return err
	}
	o := trillian.TreeOptions{DisplayName: *name, Description: "Lineage decision ledger (PREORDERED_LOG: Lineage assigns indexes)", Insecure: *insecure}
	if *ca != "" {
		tc, err := trillian.TLSFromCA(*ca)
		if err != nil {
			return err
		}
		o.TLS = tc
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	id, err := trillian.CreateTree(ctx, *addr, o)
	if err != nil {
		return err
	}
	fmt.Printf("created tree %d\nrun: lineaged serve --ledger trillian --trillian-addr %s --trillian-tree-id %d\n", id, *addr, id)
	return nil
}
