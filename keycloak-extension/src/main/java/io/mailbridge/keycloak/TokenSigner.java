package io.mailbridge.keycloak;

import com.fasterxml.jackson.core.JsonProcessingException;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import java.nio.charset.StandardCharsets;
import java.security.GeneralSecurityException;
import java.time.Clock;
import java.util.Base64;
import java.util.UUID;
import javax.crypto.Mac;
import javax.crypto.spec.SecretKeySpec;

/** Signs the short-lived HS256 token that authenticates one request to the service. */
public final class TokenSigner {

    /** The audience the service expects. */
    public static final String AUDIENCE = "mailbridge";
    /** Lifetime of a token in seconds: one request, with room for clock skew. */
    public static final long LIFETIME_SECONDS = 60;

    private static final ObjectMapper JSON = new ObjectMapper();
    private static final Base64.Encoder B64 = Base64.getUrlEncoder().withoutPadding();
    private static final String HEADER = B64.encodeToString("{\"alg\":\"HS256\",\"typ\":\"JWT\"}".getBytes(StandardCharsets.UTF_8));

    private final SecretKeySpec key;
    private final Clock clock;

    /** A signer for the shared secret; the clock is injected so tests can fix the time. */
    public TokenSigner(String secret, Clock clock) {
        this.key = new SecretKeySpec(secret.getBytes(StandardCharsets.UTF_8), "HmacSHA256");
        this.clock = clock;
    }

    /**
     * A fresh token for one request.
     *
     * @param issuer the realm's URL (or its name when no URL is known)
     * @param tenant the realm name, or null to act for the service's default tenant
     */
    public String sign(String issuer, String tenant) throws GeneralSecurityException {
        String signingInput = HEADER + "." + B64.encodeToString(bytes(claims(issuer, tenant, clock)));
        Mac mac = Mac.getInstance("HmacSHA256");
        mac.init(key);
        byte[] signature = mac.doFinal(signingInput.getBytes(StandardCharsets.US_ASCII));
        return signingInput + "." + B64.encodeToString(signature);
    }

    /** The claims of one request's token, whatever signs it. */
    static ObjectNode claims(String issuer, String tenant, Clock clock) {
        long now = clock.instant().getEpochSecond();
        ObjectNode claims = JSON.createObjectNode();
        claims.put("iss", issuer);
        claims.put("aud", AUDIENCE);
        if (tenant != null) {
            claims.put("tenant", tenant);
        }
        claims.put("iat", now);
        claims.put("exp", now + LIFETIME_SECONDS);
        claims.put("jti", UUID.randomUUID().toString());
        return claims;
    }

    private static byte[] bytes(ObjectNode claims) throws GeneralSecurityException {
        try {
            return JSON.writeValueAsBytes(claims);
        } catch (JsonProcessingException e) {
            // Only strings and numbers go in, so this cannot happen; keep the checked type honest.
            throw new GeneralSecurityException("could not encode token claims", e);
        }
    }
}
