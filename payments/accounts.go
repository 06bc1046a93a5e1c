package payments

import (
	"strings"
	"sync"
)

// A guest payment needs two things of its account: the product (its line
// item's and event's) and the customer name (the holder name when the
// request has none). The application never changes either once the
// account exists, so Submit remembers them per account instead of reading
// the account before every payment, a round trip of its own. Nothing is
// taken on trust: the statement that writes the payment writes it only
// if the account still has that product and name
// (store.NewPayment.CustomerName), else Submit forgets the entry, reads
// the account and builds the payment again; a refusal that rests on a
// remembered name is made only after a fresh read. The entry does not
// grant access: it is keyed by org, and the write joins the account
// within the org as before; an unknown account is never remembered.
// Payment transfers read the account every time: their payment method is
// configuration that changes.

// maxCachedAccounts bounds the accounts remembered, each a few hundred
// bytes: past it, the cache starts again empty.
const maxCachedAccounts = 10_000

type accountKey struct{ org, account string }

// accountFacts is what a guest payment takes from its account.
type accountFacts struct {
	productID    string
	customerName string
}

type accountCache struct {
	max     int
	mu      sync.Mutex
	entries map[accountKey]accountFacts
}

func newAccountCache(max int) *accountCache {
	return &accountCache{max: max, entries: map[accountKey]accountFacts{}}
}

func (c *accountCache) get(org, account string) (accountFacts, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	f, ok := c.entries[accountKey{org, account}]
	return f, ok
}

func (c *accountCache) put(org, account string, f accountFacts) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.entries) >= c.max {
		clear(c.entries)
	}
	// Copies, so that an entry never pins a request's memory.
	c.entries[accountKey{strings.Clone(org), strings.Clone(account)}] = accountFacts{
		productID: strings.Clone(f.productID), customerName: strings.Clone(f.customerName)}
}

func (c *accountCache) forget(org, account string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.entries, accountKey{org, account})
}

func (c *accountCache) len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.entries)
}
