package io.mailbridge.keycloak;

import java.security.GeneralSecurityException;
import java.time.Clock;
import org.keycloak.crypto.Algorithm;
import org.keycloak.crypto.KeyUse;
import org.keycloak.crypto.KeyWrapper;
import org.keycloak.crypto.SignatureProvider;
import org.keycloak.crypto.SignatureSignerContext;
import org.keycloak.jose.jws.JWSBuilder;
import org.keycloak.models.KeycloakSession;
import org.keycloak.models.RealmModel;

/**
 * Signs the request token with the realm's active signing key (its default signature algorithm,
 * RS256 unless the realm chose ES256 or EdDSA), so the service verifies it against the realm's
 * published keys and no secret is configured anywhere. Key rotation in the realm needs no change:
 * each token names its key by {@code kid}.
 */
public final class RealmKeySigner {

    private final Clock clock;

    /** A signer whose token times come from {@code clock}. */
    public RealmKeySigner(Clock clock) {
        this.clock = clock;
    }

    /**
     * A fresh token for one request of {@code realm}.
     *
     * @param issuer the realm's issuer URL, as in its tokens and discovery document
     */
    public String sign(KeycloakSession session, RealmModel realm, String issuer) throws GeneralSecurityException {
        String algorithm = realm.getDefaultSignatureAlgorithm();
        if (algorithm == null || algorithm.isBlank()) {
            algorithm = Algorithm.RS256;
        }
        KeyWrapper key = session.keys().getActiveKey(realm, KeyUse.SIG, algorithm);
        if (key == null) {
            throw new GeneralSecurityException("realm " + realm.getName() + " has no active " + algorithm + " signing key");
        }
        SignatureProvider provider = session.getProvider(SignatureProvider.class, algorithm);
        if (provider == null) {
            throw new GeneralSecurityException("Keycloak has no signature provider for " + algorithm);
        }
        try {
            SignatureSignerContext signer = provider.signer(key);
            return new JWSBuilder().type("JWT").jsonContent(TokenSigner.claims(issuer, realm.getName(), clock)).sign(signer);
        } catch (RuntimeException e) {
            // Keycloak's SignatureException is unchecked; the caller reports a checked failure.
            throw new GeneralSecurityException("could not sign with realm " + realm.getName() + "'s key: " + e.getMessage(), e);
        }
    }
}
