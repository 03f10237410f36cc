// How a frontend uses the generated types (docs/clients.md). Type-checked against a freshly generated
// generated/api.ts by the contract tests, so it breaks, loudly, when the API it relies on changes.
import createClient from "openapi-fetch";

import type { components, operations, paths } from "./generated/api";

export type Problem = components["schemas"]["Problem"];
export type FieldError = components["schemas"]["FieldError"];
export type CaseRead = components["schemas"]["CaseRead"];
export type CaseCreate = operations["createCase"]["requestBody"]["content"]["application/json"];
export type Vocabularies = components["schemas"]["Vocabularies"];

/** One client for the whole system: every path goes through the gateway. */
export function gatewayClient(baseUrl: string, accessToken: string) {
  return createClient<paths>({ baseUrl, headers: { Authorization: `Bearer ${accessToken}` } });
}

type Gateway = ReturnType<typeof gatewayClient>;

/** What to show next to each form field: the field's path and the server's message (never the value). */
export function fieldMessages(problem: Problem): Map<string, string> {
  const messages = new Map<string, string>();
  for (const error of problem.errors ?? []) {
    messages.set(error.loc.filter((part) => part !== "body").join("."), error.msg);
  }
  return messages;
}

/** A report taken offline and sent later: the Idempotency-Key makes a resend answer the case made the first time. */
export async function reportCase(gateway: Gateway, report: CaseCreate, idempotencyKey: string) {
  const { data, error, response } = await gateway.POST("/cases/v1/cases", {
    body: report,
    params: { header: { "Idempotency-Key": idempotencyKey } },
  });
  if (error) {
    return { ok: false as const, problem: error, fields: fieldMessages(error) };
  }
  return { ok: true as const, created: data, location: response.headers.get("Location"), etag: response.headers.get("ETag") };
}

export type PlanSubmission = components["schemas"]["PlanSubmission"];
export type CaseChange = components["schemas"]["CaseChange"];

/** A workflow step, each its own typed operation: the compiler knows what `submit_plan` needs (Form 04). It is sent
 * with the ETag of the version the officer read; a 412 links the current version to merge with. */
export async function submitPlan(gateway: Gateway, read: CaseRead, etag: string, plan: PlanSubmission) {
  const { data, error, response } = await gateway.POST("/cases/v1/cases/{case_id}/actions/submit_plan", {
    params: { path: { case_id: read.id }, header: { "If-Match": etag } },
    body: plan,
  });
  if (response.status === 412 && error) {
    return { conflict: true as const, currentEtag: error.current_etag, current: error.current, problem: error };
  }
  return { conflict: false as const, updated: data, problem: error };
}

/** A phone's replica of its cases: apply each page of the sync feed in order, keep the cursor with the replica,
 * ask again while `has_more`. A 410 means the cursor is not yours any more (another user, role or place): start
 * over without one. */
export async function syncCases(gateway: Gateway, replica: Map<string, CaseChange>, cursor?: string) {
  for (;;) {
    const { data, error, response } = await gateway.GET("/cases/v1/sync/cases", {
      params: { query: cursor ? { cursor } : {} },
    });
    if (response.status === 410) {
      replica.clear();
      cursor = undefined;
      continue;
    }
    if (!data) {
      throw new Error(`sync: ${error?.title ?? response.status}`);
    }
    for (const item of data.items) {
      if (item.deleted) {
        replica.delete(item.id);
      } else {
        replica.set(item.id, item);
      }
    }
    cursor = data.next_cursor;
    if (!data.has_more) {
      return cursor;
    }
  }
}

/** Labels in Vietnamese and English, revalidated with the ETag the app keeps: 304 keeps the cached copy. */
export async function loadVocabularies(gateway: Gateway, cached?: { etag: string; body: Vocabularies }) {
  const { data, response } = await gateway.GET("/v1/vocabularies", {
    headers: cached ? { "If-None-Match": cached.etag } : {},
  });
  if (response.status === 304 && cached) {
    return cached;
  }
  if (!data) {
    throw new Error(`vocabularies: HTTP ${response.status}`);
  }
  return { etag: response.headers.get("ETag") ?? "", body: data };
}

export function label(vocabularies: Vocabularies, name: string, code: string, language: "vi" | "en"): string {
  const term = vocabularies.vocabularies.find((v) => v.name === name)?.terms.find((t) => t.code === code);
  return term ? term[language] : code;
}
