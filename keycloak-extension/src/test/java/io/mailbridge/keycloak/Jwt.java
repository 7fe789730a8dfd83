package io.mailbridge.keycloak;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import java.nio.charset.StandardCharsets;
import java.security.MessageDigest;
import java.util.Base64;
import javax.crypto.Mac;
import javax.crypto.spec.SecretKeySpec;

/** Checks a token as the service would: header, HMAC, then returns the claims. */
final class Jwt {

    private Jwt() {
    }

    static JsonNode verify(String token, String secret) throws Exception {
        String[] parts = token.split("\\.");
        if (parts.length != 3) {
            throw new AssertionError("not a JWS compact token");
        }
        ObjectMapper json = new ObjectMapper();
        JsonNode header = json.readTree(Base64.getUrlDecoder().decode(parts[0]));
        if (!"HS256".equals(header.get("alg").asText()) || !"JWT".equals(header.get("typ").asText())) {
            throw new AssertionError("unexpected header " + header);
        }
        Mac mac = Mac.getInstance("HmacSHA256");
        mac.init(new SecretKeySpec(secret.getBytes(StandardCharsets.UTF_8), "HmacSHA256"));
        byte[] expected = mac.doFinal((parts[0] + "." + parts[1]).getBytes(StandardCharsets.US_ASCII));
        if (!MessageDigest.isEqual(expected, Base64.getUrlDecoder().decode(parts[2]))) {
            throw new AssertionError("bad signature");
        }
        return json.readTree(Base64.getUrlDecoder().decode(parts[1]));
    }
}
