package payments

import "github.com/microshop/microshop/services/payments/paymentsapi"

// The ledger is double entry: every movement of money is exactly two
// entries, a debit of the account the money goes to (a positive amount)
// and a credit of the account it comes from (the same amount, negative),
// written in the transaction that changes the payment. So every movement,
// every payment and the whole ledger sum to zero, per currency, and the
// balances say where the money is:
//
//	customer_card        customers' cards. Credited when a hold is placed,
//	                     debited when a hold is released or money refunded.
//	                     Its balance is minus what is held on or taken from
//	                     cards.
//	authorizations_held  amounts held on cards, not yet captured or voided.
//	merchant_revenue     money captured, net of refunds.
//
// The movements, from -> to:
//
//	authorize  customer_card       -> authorizations_held  (the amount)
//	capture    authorizations_held -> merchant_revenue     (the amount)
//	void       authorizations_held -> customer_card        (the amount)
//	refund     merchant_revenue    -> customer_card        (the refund)
//
// A declined authorization moves nothing. For one payment, then:
// authorizations_held = amount - captured (0 once voided),
// merchant_revenue = captured - refunded, customer_card = minus their sum.

// movement is a kind of money movement between two accounts.
type movement struct {
	kind     string
	from, to string
}

var (
	moveAuthorize = movement{"authorize", paymentsapi.AccountCustomerCard, paymentsapi.AccountAuthorizationsHeld}
	moveCapture   = movement{"capture", paymentsapi.AccountAuthorizationsHeld, paymentsapi.AccountMerchantRevenue}
	moveVoid      = movement{"void", paymentsapi.AccountAuthorizationsHeld, paymentsapi.AccountCustomerCard}
	moveRefund    = movement{"refund", paymentsapi.AccountMerchantRevenue, paymentsapi.AccountCustomerCard}
)
