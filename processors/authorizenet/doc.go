// Package authorizenet is payrail's AUTHORIZE_NET processor: a typed
// client for the Authorize.Net JSON API (no maintained Go SDK exists) and
// the processors.Processor that charges cards and customer payment
// profiles with it.
//
// # Client
//
// Client sends createTransactionRequest, getTransactionDetailsRequest,
// getUnsettledTransactionListRequest, getSettledBatchListRequest,
// getTransactionListRequest and getCustomerPaymentProfileRequest (to
// verify a profile before an account stores it); CheckReporting tells
// whether the merchant's reporting calls are allowed. Merchants holds one
// Client per org: the org's own merchant login, else the default; the
// processor built by NewOrgProcessor sends every call of a job with its
// org's client, and never another org's login. The API validates JSON against
// AnetApiSchema.xsd as if it were XML, element order included (E00003
// otherwise), so each request is a struct with its fields in the XSD's
// sequence order; TestRequestsFollowXSD reads the schema and checks them.
// Amounts are int64 cents written as decimal strings. Responses start
// with a UTF-8 byte order mark, which is stripped, and list-valued fields
// are decoded in each of the shapes the API uses. A charge's result is
// decided by transactionResponse.responseCode (1 approved, 2 declined,
// 3 error, 4 held for review), never by messages.resultCode alone.
// Every call is bounded by Config.Timeout on top of the caller's context.
// Failures are *Error values with a Class (retryable or permanent) and
// OutcomeUnknown, set when the request was sent and no trustworthy
// answer came back. Error text taken from the API has digit runs masked,
// so neither errors nor logs carry a card number, card code or account
// number.
//
// # One charge per payment
//
// A job can be delivered more than once, and a charge's outcome can be
// unknown: a timeout or a connection reset after the request was sent, a
// 5xx from a proxy, a crash between the answer and the database write.
// The processor defends with two independent mechanisms, because each
// alone has a gap:
//
//  1. Byte-identical retries inside the duplicate window. Every request
//     is a pure function of the job: order.invoiceNumber and refId derive
//     from Job.AttemptID (InvoiceNumber), and transactionSettings carries
//     duplicateWindow=28800, the API's maximum of 8 hours. Authorize.Net
//     rejects a transaction whose login, type, card number, expiry,
//     amount, invoice number, customer id, billing name and address and
//     window value all match one inside the window, with response reason
//     11 and, because the window was sent, the original's transId. The
//     processor then reads the original with getTransactionDetails and
//     returns its outcome: never a second charge. The card code is not
//     among the compared fields (nor is refId), which matters: a job the
//     relay published carries no CVV (docs/security.md), so its retry differs from
//     the fast-path original only in cardCode and is still a duplicate.
//     The simulator keys its duplicate check on the same documented
//     fields. Gap: the window ends after 8 hours, and a settled original
//     can only be found by reporting calls.
//
//  2. Look before charging again. On any delivery after the first
//     (Job.Delivery > 1), and in Resolve, the processor first searches for
//     the attempt's invoice number among unsettled transactions (newest
//     first, stopping at transactions older than the payment) and then in
//     the batches settled since the payment was accepted, and reads the
//     match's details. A charged, held or declined original is the
//     answer; only "not found" (or failed originals that charged nothing)
//     lets the charge go out, and then mechanism 1 still guards against
//     an original that was in flight and not yet listed. Lists are paged
//     until a short page (totalNumInResultSet, optional in the XSD, only
//     ends the paging early when present), at most maxPages pages. Gap:
//     the Transaction Details API must be enabled for the merchant, and
//     the search covers 30 days.
//
// # Reversals
//
// A job with Reversal set gives a payment back instead of charging
// (reversal.go): the original transaction is read, voided while
// unsettled and refunded once settled (masked card, original transId,
// the reversal attempt's invoice number and the duplicate window), a
// void that finds the original settled since the read (reason 16)
// refunds instead. The refund gets both mechanisms above; a void is
// idempotent at the gateway (a voided original reads as voided, a second
// void answers 310). Reversals need the Transaction Details API and are
// Permanent without it.
//
// # The Transaction Details API
//
// Every reporting call (getTransactionDetails and the transaction and
// batch lists) answers E00011 unless the merchant enabled the
// Transaction Details API in the Merchant Interface (ReportingSetting).
// Merchants.CheckReporting finds out with one
// getUnsettledTransactionListRequest of one transaction: the worker checks
// the default login at start (CheckDefaultReporting), and the org
// processor checks each other login in the background with its first
// job. The answer is kept per login for the life of the process. A
// disabled API is a configuration error: logged at ERROR with the login id
// (never the key) and the setting to enable, and counted in
// payrail_authorizenet_config_errors_total{reason="reporting_disabled"}.
// Jobs run the same either way. Without reporting, mechanism 1 alone
// guards: a lookup that fails is charged through only inside the
// duplicate window, and a reason-11 answer carrying the original's
// transId and authCode resolves to that approved charge (resolveDuplicate)
// even though its details cannot be read; past the window an unverifiable
// attempt ends dead, and held payments cannot be polled.
//
// When the lookup fails, the processor charges anyway only while the
// attempt is young enough (measured from Job.CreatedAt, which precedes
// every send) for the duplicate window to catch a second charge;
// otherwise it returns Retryable, and an attempt that can never be
// verified ends in the worker's visible dead state rather than in a
// possible second charge. The first delivery skips the lookup: nothing
// can have been sent before it, and the duplicate window covers two
// deliveries racing each other.
//
// A transient processing error (reasons 19-23 and others the API asks to
// retry) charged nothing and is retried with the same request. Whether
// the real gateway counts such errors toward the duplicate check is not
// documented; if it does, the retry is answered with reason 11, the
// processor finds the original failed, and it keeps returning Retryable
// until the window passes or deliveries run out, still without charging
// twice.
//
// # Outcomes
//
// Approved → processors.Succeeded; declined → Declined (Code and Message
// are the response reason code and text); held for review (reasons 252,
// 253) → Held, after which the worker polls Resolve with the
// transaction id (Job.TransactionID), which reads that transaction with
// one getTransactionDetails call and answers Held, Succeeded or
// Declined; only a job without a transaction id (or with one the gateway
// does not know) is looked up by its invoice number. Network
// errors, timeouts, HTTP 5xx and 429, E00001, E00049, E00053, E00104 and
// transient reasons → Retryable; E00007 and other credential, permission
// and schema errors, and non-transient reasons → Permanent. Result.
// Instrument holds only the brand and the last four digits; the brand is
// spelled as intake spells it (processors.CardBrand), the gateway's
// accountType and cardType ("MasterCard", "AmericanExpress") normalized
// by processors.NormalizeBrand, so a payment's events agree.
//
// Card numbers are sent with 13 to 16 digits (MinCardDigits,
// MaxCardDigits: the XSD's cardNumber is at most 16 characters); intake
// refuses others with a 422, and a job carrying one is Permanent
// (invalid_job).
package authorizenet
