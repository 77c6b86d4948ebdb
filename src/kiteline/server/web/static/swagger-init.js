// Starts Swagger UI on /v2/docs from the package's own copy (no CDN, no inline script).
window.addEventListener("load", function () {
  "use strict";
  var root = document.getElementById("swagger-ui");
  window.ui = window.SwaggerUIBundle({
    url: root.dataset.openapiUrl,
    dom_id: "#swagger-ui",
    deepLinking: true,
    presets: [window.SwaggerUIBundle.presets.apis],
    layout: "BaseLayout",
    // Swagger UI otherwise sends the document to validator.swagger.io for a badge.
    validatorUrl: null,
  });
});
