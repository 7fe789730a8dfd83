-- wrk script: POST one small message per request, as Keycloak's extension does.
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer " .. os.getenv("MB_TOKEN")
wrk.body = [[{"to":[{"email":"ada@example.com","name":"Ada"}],"from":{"email":"no-reply@acme.example"},"subject":"Reset your password","text":"Open https://sso.example/reset?key=abc to reset your password.","html":"<p>Open <a href=\"https://sso.example/reset?key=abc\">this link</a> to reset your password.</p>"}]]
