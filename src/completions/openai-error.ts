/**
 * OpenAI's error body, `{"error": {message, type, param, code}}`, for a
 * refusal on one of the OpenAI routes; the HTTP status stays the failure's.
 */
import type { RequestFailure } from "../handler/failure.ts";

export interface OpenAIErrorBody {
  error: { message: string; type: string; param: string | null; code: string | null };
}

/** OpenAI's `type` for an HTTP status. */
function openaiErrorType(status: number): string {
  if (status === 401) return "authentication_error";
  if (status === 404) return "not_found_error";
  if (status === 429) return "rate_limit_error";
  if (status >= 500) return "server_error";
  return "invalid_request_error";
}

export function openaiErrorBody(failure: RequestFailure): OpenAIErrorBody {
  return {
    error: {
      message: failure.message,
      type: openaiErrorType(failure.status),
      param: failure.field ?? null,
      code: failure.status === 404 ? "not_found" : null,
    },
  };
}

/** The failure, answered in OpenAI's error shape. */
export const asOpenAIFailure = (failure: RequestFailure): RequestFailure => failure.withBody(openaiErrorBody(failure));
