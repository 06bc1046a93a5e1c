package processors

// Processor names: the payment_processor_name values of the API, declared
// here once. Each processor package names itself with one of them.
const (
	// NoProcessor configures an account method without a processor.
	NoProcessor = "NONE"
	// CanopyNACHA stages ACH debits for a NACHA file (processors/nacha).
	CanopyNACHA = "CANOPY_NACHA"
	// AuthorizeNet charges cards (processors/authorizenet).
	AuthorizeNet = "AUTHORIZE_NET"
)
