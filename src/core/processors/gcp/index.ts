export { createGcpBillingProcessor, serviceAccountTokens, billingQuery, validateGcpBillingConfig, GCP_BILLING_SPEC, type TokenSource } from './billing.js'
