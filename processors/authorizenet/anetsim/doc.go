// Package anetsim simulates the Authorize.Net JSON API sandbox for tests,
// for payrail dev and for "payrail anetsim".
//
// A Server is an http.Handler for POST /xml/v1/request.api. It validates
// each request against the embedded AnetApiSchema.xsd (E00003 on an
// unknown or out-of-order element, naming it, as the real API does),
// authenticates merchantAuthentication (E00007), and answers with
// BOM-prefixed JSON. It implements createTransactionRequest
// (authCaptureTransaction and authOnlyTransaction with a credit card or a
// customer payment profile), getTransactionDetailsRequest,
// getUnsettledTransactionListRequest, getSettledBatchListRequest,
// getTransactionListRequest, updateHeldTransactionRequest,
// createCustomerProfileRequest, getCustomerPaymentProfileRequest and
// authenticateTestRequest. It serves several merchant logins
// (Options.Merchants), each with its own profiles and transactions.
//
// Outcomes follow the sandbox's documented triggers: its test card
// numbers, ZIP code 46282 (declined) and the AVS ZIP codes, card codes
// 900-904, expired cards, and the legacy error-generation card
// 4222222222222 whose whole-dollar amount picks the response reason code
// ($252.00 and $253.00 are held for review). The duplicate check keys on
// the fields Authorize.Net documents, not on the card code or refId, and
// answers reason 11 with the original's transId within duplicateWindow.
//
// Faults are injected at random (Options.Faults) or one request at a
// time (Server.Inject): latency, HTTP 5xx, hangs and dropped connections,
// each either before the request is processed or after its charge is
// recorded. Server.Charges counts the charges made per invoice number, so
// a test can prove one charge per payment. README.md lists every trigger.
package anetsim
