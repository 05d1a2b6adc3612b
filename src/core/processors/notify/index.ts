export { createWebhookProcessor, runSummary, signWebhook, validateWebhookConfig, type WebhookConfig } from './webhook.js'
