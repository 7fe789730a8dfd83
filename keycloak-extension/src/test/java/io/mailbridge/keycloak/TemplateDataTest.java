package io.mailbridge.keycloak;

import static org.junit.jupiter.api.Assertions.assertEquals;

import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;

class TemplateDataTest {

    @ParameterizedTest
    @CsvSource({
        "password-reset.ftl, password-reset",
        "executeActions.ftl, execute-actions",
        "email-verification.ftl, email-verification",
        "email-verification-with-code.ftl, email-verification-with-code",
        "email-test.ftl, email-test",
        "identity-provider-link.ftl, identity-provider-link",
        "org-invite.ftl, org-invite",
        "email-update-confirmation.ftl, email-update-confirmation",
        "event-login_error.ftl, event-login_error",
        "event-update_totp.ftl, event-update_totp",
    })
    void kindsFollowTheServicesTemplateNames(String templateFile, String kind) {
        assertEquals(kind, TemplateData.kindOf(templateFile));
    }
}
