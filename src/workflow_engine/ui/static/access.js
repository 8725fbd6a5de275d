// What the session's token may do (GET /api/whoami), for the views to offer only that.
// The scopes each control needs are the server's (api/access.py, required_scope):
// starting, firing, retrying, cancelling and uploading need `run`; saving definitions
// needs `admin`. A control the token cannot use is not drawn at all.
import { createContext, h } from "preact";
import { useContext } from "preact/hooks";
import htm from "htm";

const html = htm.bind(h);

/** The answer of GET /api/whoami, or null while it is not known. */
export const Access = createContext(null);

/** Whether the session's token covers `scope` (false while that is not known). */
export function useCan(scope) {
  const access = useContext(Access);
  return Boolean(access?.scopes?.includes(scope));
}

/** Where the controls that need `scope` would be, if the token lacks it: says so plainly
 * (nothing while what the token may do is not known yet). */
export function CannotDo({ scope, what }) {
  const access = useContext(Access);
  if (!access || access.scopes?.includes(scope)) return null;
  const readOnly = access.scopes?.length === 1 && access.scopes[0] === "read";
  const needs = html`<code>${scope}</code>`;
  return html`
    <p class="read-only" data-testid="read-only">${readOnly
      ? html`Your token can read only. To ${what}, a token needs the ${needs} scope.`
      : html`Your token cannot ${what}: that needs the ${needs} scope.`}</p>`;
}
