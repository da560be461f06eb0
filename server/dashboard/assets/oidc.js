// The ES module face of oidc-client-ts. The package's shipped browser build
// (vendor/oidc-client-ts.min.js, loaded by index.html before this module) is
// a classic script that defines the global "oidc"; its ESM build imports
// jwt-decode by a bare name, which a browser resolves only with an inline
// import map, and the page's Content-Security-Policy forbids inline scripts.
const lib = globalThis.oidc;
if (!lib || typeof lib.UserManager !== "function") {
  throw new Error("oidc-client-ts did not load (vendor/oidc-client-ts.min.js)");
}

export const { UserManager, WebStorageStateStore, ErrorResponse, ErrorTimeout } = lib;
