package io.mailbridge.keycloak;

import java.security.GeneralSecurityException;
import java.time.Clock;
import java.util.ArrayList;
import java.util.List;
import org.keycloak.crypto.Algorithm;
import org.keycloak.crypto.KeyUse;
import org.keycloak.crypto.KeyWrapper;
import org.keycloak.crypto.SignatureProvider;
import org.keycloak.crypto.SignatureSignerContext;
import org.keycloak.jose.jws.JWSBuilder;
import org.keycloak.models.KeycloakSession;
import org.keycloak.models.RealmModel;

/**
 * Signs the request token with one of the realm's active signing keys, so the service verifies it
 * against the realm's published keys and no secret is configured anywhere: the key of the realm's
 * default signature algorithm when the service verifies that algorithm (RS256, ES256, EdDSA), else
 * the first of those the realm has an active key for (every realm has an RS256 key unless it was
 * removed). Key rotation in the realm needs no change: each token names its key by {@code kid}.
 */
public final class RealmKeySigner {

    /** The algorithms the service verifies realm keys with, in the order they are tried. */
    static final List<String> VERIFIED = List.of(Algorithm.RS256, Algorithm.ES256, Algorithm.EdDSA);

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
        List<String> order = new ArrayList<>(VERIFIED);
        String preferred = realm.getDefaultSignatureAlgorithm();
        if (preferred != null && order.remove(preferred)) {
            order.add(0, preferred);
        }
        KeyWrapper key = null;
        String algorithm = null;
        for (String candidate : order) {
            key = session.keys().getActiveKey(realm, KeyUse.SIG, candidate);
            if (key != null) {
                algorithm = candidate;
                break;
            }
        }
        if (key == null) {
            throw new GeneralSecurityException("realm " + realm.getName() + " has no active " + String.join(", ", VERIFIED)
                    + " signing key (the algorithms mailbridge verifies); add one under Realm settings, Keys");
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
