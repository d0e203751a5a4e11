package ingest

import (
	"errors"
	"fmt"

	"github.com/nats-io/nats-server/v2/server"
)

// NATS accounts of the publisher-NKey mode.
//
// A NATS server delivers a message only inside the account of the client that sent it, and
// JetStream sends its PubAck to whatever reply subject the publisher named. With every client
// in one account, a publisher confined to lineage.records.<its tenant> could still aim the
// PubAcks of its own records at lineage.quarantine.<another tenant> (the quarantine stream
// stored them), at lineage.records.<another tenant> (the ingester quarantined them there) or
// at the JetStream API: publish permissions cover the subject, not the reply subject.
//
// So with publisher NKeys the embedded server keeps lineaged, the streams and the JetStream
// API in the global account ("$G", where they live in every mode, so the stored streams stay
// where they are when the mode changes), and puts each publisher NKey in an account of its
// own (PublisherAccount) without JetStream. The global account exports lineage.records.> as a
// service to the publisher accounts; each imports only its tenants' subjects. A message crosses
// with its subject and headers unchanged (the ingester compares the record's tenant with the
// subject; JetStream dedupes on Nats-Msg-Id; the ingester checks Lineage-Signature), and the
// server replaces its reply subject with a one-time "_R_." subject of the global account that
// leads back to the publisher's reply subject in the publisher's account (a Singleton
// response: the one PubAck). Whatever reply subject a publisher names, its PubAck is delivered
// in its own account, where nothing but its own connection listens: no stream, no JetStream
// API (an account without JetStream answers "not enabled"), no other tenant's import.

// PublisherAccount is the NATS account of the publisher with this public NKey.
func PublisherAccount(publicKey string) string { return "PUBLISHER_" + publicKey }

// publisherAccounts returns the accounts and NKey users of the publisher-NKey mode: the global
// account with lineaged's NKey and the records service export, and one account per publisher
// with its NKey and its service imports.
func publisherAccounts(serviceNKey string, pubs []PublisherNKey) ([]*server.Account, []*server.NkeyUser, error) {
	lineaged := server.NewAccount(server.DEFAULT_GLOBAL_ACCOUNT)
	accounts := []*server.Account{lineaged}
	users := []*server.NkeyUser{{Nkey: serviceNKey, Account: lineaged}}
	seen := map[string]bool{serviceNKey: true}
	for _, p := range pubs {
		if seen[p.PublicKey] {
			return nil, nil, fmt.Errorf("ingest: publisher NKey %s is listed twice (or is lineaged's own)", p.PublicKey)
		}
		seen[p.PublicKey] = true
		acc := server.NewAccount(PublisherAccount(p.PublicKey))
		accounts = append(accounts, acc)
		users = append(users, &server.NkeyUser{Nkey: p.PublicKey, Account: acc, Permissions: publisherPermissions(p.PublicKey, p.Tenants)})
	}
	// Singleton responses: one PubAck per record message.
	if err := lineaged.AddServiceExportWithResponse(RecordsSubjects, server.Singleton, accounts[1:]); err != nil {
		return nil, nil, fmt.Errorf("ingest: nats service export: %w", err)
	}
	for i, p := range pubs {
		for _, subject := range publisherSubjects(p.Tenants) {
			if err := accounts[i+1].AddServiceImport(lineaged, subject, subject); err != nil {
				return nil, nil, fmt.Errorf("ingest: nats service import %s: %w", subject, err)
			}
		}
	}
	return accounts, users, nil
}

// enableServiceJetStream turns JetStream on for the global account once the server runs: with
// other accounts configured the server enables it at start only for accounts that ask for it,
// which the global account cannot do through server.Options. Its streams are recovered from
// the store directory as in single-account mode. Only lineaged, which connects after this, uses
// JetStream directly; a record published in the moment before is answered "no responders",
// which JetStream clients retry, and is not stored.
func enableServiceJetStream(ns *server.Server) error {
	acc := ns.GlobalAccount()
	if acc == nil {
		return errors.New("ingest: embedded nats server has no global account")
	}
	if acc.JetStreamEnabled() {
		return nil
	}
	if err := acc.EnableJetStream(nil, nil); err != nil {
		return fmt.Errorf("ingest: enable JetStream for lineaged's account: %w", err)
	}
	return nil
}
